// MARK: - Reverse-mode autodiff

/// Gradients of `output` with respect to each of `targets`, by walking the graph backward and
/// applying each op's VJP. `seed` is the cotangent of `output` (default: ones, for a scalar loss).
/// A target that `output` does not depend on gets zeros. Only cotangents on a path from a target
/// to `output` are built: an image's, a label's or a constant's never are.
///
/// Without `keepGraph` the walk consumes the graph as it goes, as a training step wants: each node
/// lets go of its inputs once its VJP has run, so every value that no later VJP reads is freed
/// (unless the caller holds it), and the gradient nodes record nothing. A second call through a
/// consumed node throws. With `keepGraph` the graph stays whole and the gradient nodes record
/// their inputs, so that gradients can be taken again, or of the gradients.
public func gradients(
  of output: Tensor, wrt targets: [Tensor], seed: Tensor? = nil, keepGraph: Bool = false
) throws -> [Tensor] {
  if keepGraph { return try backward(output, targets, seed, consume: false) }
  return try withoutGradients { try backward(output, targets, seed, consume: true) }
}

/// The value of `f` at `xs` and its gradients with respect to each of `xs`; `f` must return a
/// one-element tensor.
public func valueAndGradients(
  at xs: [Tensor], of f: ([Tensor]) throws -> Tensor
) throws -> (value: Tensor, gradients: [Tensor]) {
  let value = try GradientRecording.$enabled.withValue(true) { try f(xs) }
  return (value, try gradients(of: value, wrt: xs))
}

// MARK: - The walk

private func backward(_ output: Tensor, _ targets: [Tensor], _ seed: Tensor?, consume: Bool) throws -> [Tensor] {
  let cotangentSeed: Tensor
  if let seed {
    guard seed.type == output.type, seed.backend === output.backend else {
      throw TensorError(op: "gradients", operands: [output.type, seed.type], "the seed must match the output's type and backend")
    }
    cotangentSeed = seed
  } else {
    guard output.shape.count == 1 else {
      throw TensorError(op: "gradients", operands: [output.type], "a non-scalar output needs a seed cotangent")
    }
    cotangentSeed = try Tensor(repeating: 1, shape: output.shape, dtype: output.dtype, on: output.backend)
  }

  // Every node the output depends on, producers first (ids are a topological order).
  var pending = reachableNodes(from: output.node).sorted { $0.id < $1.id }
  if let used = pending.first(where: \.isConsumed) {
    throw TensorError(
      op: "gradients", operands: [output.type],
      "the graph through \(used.op?.description ?? "a leaf") was consumed by an earlier gradients(of:wrt:) call; pass keepGraph: true to that call to take gradients through it again")
  }

  // Only nodes through which some target is reached need cotangents: a target, or a node with
  // such an input (producers come first, so one pass finds them all).
  let targetIDs = Set(targets.map(\.node.id))
  var leads = Set<Int>()
  for n in pending where targetIDs.contains(n.id) || n.inputs.contains(where: { leads.contains($0.id) }) {
    leads.insert(n.id)
  }

  var cotangents: [Int: Tensor] = [output.node.id: cotangentSeed]
  // Consumers before producers; popping, so that a consumed node is referenced by nothing here
  // once its turn is over. A node whose VJP is skipped is still consumed, so its inputs' values
  // are freed as the walk passes.
  while let n = pending.popLast() {
    defer { if consume { n.consume() } }
    guard leads.contains(n.id), let op = n.op, !n.inputs.isEmpty, let g = cotangents[n.id] else { continue }
    // The VJP builds a cotangent only for inputs that lead to a target (not for an image, a label,
    // a constant); a node with none of those (a target made from constants) runs no VJP at all.
    let needed = n.inputs.map { leads.contains($0.id) }
    let asked = GradientWalk.buildsEveryCotangent ? needed.map { _ in true } : needed
    guard asked.contains(true) else { continue }
    let inputs = n.inputs.map(Tensor.init(node:))
    let inputGrads = try op.vjp(inputs, output: Tensor(node: n), cotangent: g, needed: asked)
    precondition(inputGrads.count == inputs.count, "\(op): vjp returned \(inputGrads.count) cotangents for \(inputs.count) inputs")
    for (i, (input, grad)) in zip(inputs, inputGrads).enumerated() {
      guard let grad else { continue }
      precondition(asked[i], "\(op): vjp built a cotangent for input \(i), which was not asked for")
      guard needed[i] else { continue }
      precondition(grad.type == input.type, "\(op): vjp gave \(grad.type) for an input of \(input.type)")
      let inID = input.node.id
      cotangents[inID] = try cotangents[inID].map { try $0 + grad } ?? grad
    }
    if !targetIDs.contains(n.id) { cotangents[n.id] = nil }
  }

  return try targets.map {
    try cotangents[$0.node.id] ?? Tensor(repeating: 0, shape: $0.shape, dtype: $0.dtype, on: $0.backend)
  }
}

/// How the walk asks VJPs for cotangents.
enum GradientWalk {
  /// When true, every VJP on the walk is asked for all its inputs' cotangents and those no target
  /// needs are dropped, as before VJPs took a mask: the tests compare op counts and gradients with
  /// this, the way the walk used to run.
  @TaskLocal static var buildsEveryCotangent = false
}

/// Every node `root` depends on, itself included.
private func reachableNodes(from root: Node) -> [Node] {
  var seen = Set<ObjectIdentifier>()
  var nodes: [Node] = []
  var stack = [root]
  while let n = stack.popLast() {
    guard seen.insert(ObjectIdentifier(n)).inserted else { continue }
    nodes.append(n)
    stack.append(contentsOf: n.inputs)
  }
  return nodes
}
