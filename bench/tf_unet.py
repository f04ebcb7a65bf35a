#!/usr/bin/env python3
"""The reference U-Net (NVIDIA UNet_Medical, REFERENCE.md) in TensorFlow/Keras, built as the
reference builds it (NHWC, valid 3x3 convs, 'same' 3x3 stride-2 transposed convs, L2 5e-4 added to
the loss, Adam), timed as `unet benchmark` times ours. Writes the same JSON keys (bench/common.py).

  python3 bench/tf_unet.py --mode train|predict --batch-size N --input-size 572 \
      --warmup-steps W --max-steps S [--jit-compile] [--threads T] --output FILE.json

The step is a tf.function (Keras' default for fit/predict); --jit-compile compiles it with XLA
(jit_compile=True, the reference's --xla); --eager runs it op by op instead (not a tf.function).
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tracked files
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def build_model(keras):
    """Input [N,S,S,1] -> logits [N,S',S',2] for any valid S (the functional graph is size-free
    except for the crops, so it is built for one S)."""
    layers = keras.layers

    def conv(x, f):
        return layers.Conv2D(f, 3, padding="valid", activation="relu")(x)

    def crop_to(skip, side, skip_side):
        c = (skip_side - side) // 2
        return layers.Cropping2D(((c, c), (c, c)))(skip)

    def model_for(size):
        skips_sides, _, _ = common.geometry(size)
        f = common.filters
        inputs = keras.Input((size, size, common.INPUT_CHANNELS))
        x, skips = inputs, []
        for level in range(common.DEPTH):
            x = conv(conv(x, f(level)), f(level))
            skips.append(x)
            x = layers.MaxPool2D(2)(x)
        x = conv(conv(x, f(common.DEPTH)), f(common.DEPTH))
        x = layers.Dropout(common.DROPOUT)(x)
        for level in reversed(range(common.DEPTH)):
            x = layers.Conv2DTranspose(f(level), common.UPCONV_KERNEL, strides=2, padding="same", activation="relu")(x)
            x = layers.Concatenate(axis=-1)([x, crop_to(skips[level], x.shape[1], skips_sides[level])])
            x = conv(conv(x, f(level)), f(level))
        logits = layers.Conv2D(common.CLASSES, 1)(x)
        return keras.Model(inputs, logits, name="unet")

    return model_for


def main():
    p = common.parser("TensorFlow/Keras", ["fp32"], ["cpu"])
    p.add_argument("--jit-compile", "--xla", action="store_true", help="compile the step with XLA (jit_compile=True)")
    p.add_argument("--eager", action="store_true", help="run the step op by op, not as a tf.function")
    p.add_argument("--inter-op-threads", type=int, default=1,
                   help="TensorFlow inter-op threads (1, as TensorFlow's CPU guide advises for one socket)")
    args = p.parse_args()
    common.check_args(p, args)
    if args.eager and args.jit_compile:
        p.error("--eager and --jit-compile exclude each other")
    common.set_thread_environment(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    import keras

    keras.utils.set_random_seed(args.seed)
    model = build_model(keras)(args.input_size)
    count = model.count_params()
    assert count == common.PARAMETERS, f"the model has {count} parameters, the reference {common.PARAMETERS}"

    # One random batch, made once so that no data pipeline is timed: images in [0, 1), one-hot labels.
    n, s = args.batch_size, args.input_size
    out = common.geometry(s)[2]
    rng = np.random.default_rng(args.seed)
    images = tf.constant(rng.random((n, s, s, common.INPUT_CHANNELS), dtype=np.float32))
    onehot = tf.constant(np.eye(common.CLASSES, dtype=np.float32)[rng.integers(0, common.CLASSES, (n, out, out))])

    def loss_fn(logits, t):
        """Mean softmax cross-entropy + (1 - soft Dice per image and class)."""
        logp = tf.nn.log_softmax(logits, axis=-1)
        ce = -tf.reduce_mean(tf.reduce_sum(t * logp, axis=-1))
        prob = tf.exp(logp)
        inter = tf.reduce_sum(prob * t, axis=[1, 2])
        denom = tf.reduce_sum(prob * prob + t * t, axis=[1, 2])
        dice = tf.reduce_mean((2 * inter + common.DICE_SMOOTHING) / (denom + common.DICE_SMOOTHING))
        return ce + (1 - dice)

    wrap = (lambda f: f) if args.eager else (lambda f: tf.function(f, jit_compile=args.jit_compile))
    if args.mode == "train":
        opt = keras.optimizers.Adam(learning_rate=common.LEARNING_RATE, beta_1=0.9, beta_2=0.999, epsilon=common.ADAM_EPSILON)
        weights = model.trainable_variables
        opt.build(weights)

        @wrap
        def train_step(x, t):
            with tf.GradientTape() as tape:
                # The reference's loss: cross-entropy + Dice + weight_decay * sum(l2_loss(v)), l2_loss = sum(v^2)/2.
                loss = loss_fn(model(x, training=True), t)
                loss += common.WEIGHT_DECAY * tf.add_n([tf.nn.l2_loss(v) for v in weights])
            opt.apply_gradients(zip(tape.gradient(loss, weights), weights))
            return loss

        def step():
            return float(train_step(images, onehot))  # to the host, as ours reads the loss of every step
    else:
        @wrap
        def predict(x):
            return tf.nn.softmax(model(x, training=False), axis=-1)

        def step():
            return predict(images).numpy()

    for _ in range(args.warmup_steps):
        step()
    seconds = []
    for _ in range(args.max_steps - args.warmup_steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)

    compiled = "xla" if args.jit_compile else ("eager" if args.eager else "graph")
    config = common.base_config(args, "tensorflow", tf.__version__, common.cpu_name(), args.jit_compile, False, count)
    config.update(keras=keras.__version__, execution=compiled, inter_op_threads=args.inter_op_threads,
                  onednn_opts=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"))
    flops = common.flops_per_step(args.mode, s, n)
    common.finish(args, common.result(seconds, flops, n, None, config))


if __name__ == "__main__":
    main()
