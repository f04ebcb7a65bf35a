import SegCore
import SegData
import SegNN
import SegTrain

// MARK: - Batches for tests

/// Batch `step` of a training pipeline over `slices` (on the calling thread): the batches the
/// runner would train on with this seed.
func pipelineBatch(
  _ slices: [LabelledSlice], config: UNetConfig, size: Int, seed: UInt64, step: Int, augment: Bool = false
) throws -> (Tensor, Tensor) {
  var o = PipelineOptions()
  (o.batchSize, o.seed, o.workers) = (size, seed, 0)
  o.augmentation = augment ? AugmentationOptions.all : nil
  return try TrainingPipeline(slices: slices, config: config, options: o).batch(step).tensors(on: ReferenceBackend.shared)
}
