import SegCore

// MARK: - Segmentation loss

/// The reference's loss terms for logits [N,H,W,K] and one-hot targets of the same shape.
public struct SegmentationLoss {
  /// Mean softmax cross-entropy over pixels.
  public let crossEntropy: Tensor
  /// 1 - soft Dice, averaged over images and classes.
  public let dice: Tensor
  /// crossEntropy + dice (weight decay is added by the trainer).
  public var total: Tensor { get throws { try crossEntropy + dice } }
}

/// Smoothing of the soft Dice ratio, as the reference.
public let diceSmoothing = 1e-6

/// Cross-entropy and soft Dice loss: dice = (2 sum(p t) + 1e-6) / (sum(p^2 + t^2) + 1e-6) per image and
/// class over pixels, with p = softmax(logits).
public func segmentationLoss(logits: Tensor, targets: Tensor) throws -> SegmentationLoss {
  guard logits.shape == targets.shape, logits.shape.rank == 4 else {
    throw TensorError(op: "segmentationLoss", operands: [logits.type, targets.type], "logits and one-hot targets must both be [N,H,W,K]")
  }
  let logP = try logSoftmax(logits)
  let ce = try neg(mean(sum(targets * logP, axes: [-1])))
  return SegmentationLoss(crossEntropy: ce, dice: try 1.0 - softDice(probabilities: exp(logP), targets: targets))
}

/// The reference's eval_dice_score: soft Dice of probabilities [N,H,W,K] against one-hot targets,
/// averaged over images and classes (a scalar tensor).
public func softDice(probabilities p: Tensor, targets t: Tensor) throws -> Tensor {
  let intersection = try sum(p * t, axes: [1, 2])
  let denominator = try sum(p * p + t * t, axes: [1, 2])
  return try mean((intersection * 2 + diceSmoothing) / (denominator + diceSmoothing))
}

/// weight_decay * sum(v^2) / 2 over the given tensors.
public func l2Penalty(_ tensors: [Tensor], weightDecay: Double) throws -> Tensor {
  var total = try sum(tensors[0] * tensors[0])
  for t in tensors.dropFirst() { total = try total + sum(t * t) }
  return try total * (weightDecay / 2)
}
