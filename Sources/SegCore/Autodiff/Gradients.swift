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
///
/// `ready(i, g)`, when given, is called once per target as soon as its gradient `g` is final (the
/// last node that reads target `i` has run its VJP), while the walk goes on: a data-parallel
/// trainer starts reducing those gradients across processes while the rest are computed.
public func gradients(
  of output: Tensor, wrt targets: [Tensor], seed: Tensor? = nil, keepGraph: Bool = false,
  ready: ((Int, Tensor) throws -> Void)? = nil
) throws -> [Tensor] {
  if keepGraph { return try backward(output, targets, seed, consume: false, ready: ready) }
  return try withoutGradients { try backward(output, targets, seed, consume: true, ready: ready) }
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

private func backward(
  _ output: Tensor, _ targets: [Tensor], _ seed: Tensor?, consume: Bool, ready: ((Int, Tensor) throws -> Void)?
) throws -> [Tensor] {
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
  var readiness = ready.map { GradientReadiness(targets: targets, nodes: pending, ready: $0) }
  try readiness?.announceUnread(cotangents)
  // The VJP of one node, adding its inputs' cotangents.
  func visit(_ n: Node) throws {
    guard leads.contains(n.id), let op = n.op, !n.inputs.isEmpty, let g = cotangents[n.id] else { return }
    // The VJP builds a cotangent only for inputs that lead to a target (not for an image, a label,
    // a constant); a node with none of those (a target made from constants) runs no VJP at all.
    let needed = n.inputs.map { leads.contains($0.id) }
    let asked = GradientWalk.buildsEveryCotangent ? needed.map { _ in true } : needed
    guard asked.contains(true) else { return }
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

  // Consumers before producers; popping, so that a consumed node is referenced by nothing here
  // once its turn is over. A node whose VJP is skipped is still consumed, so its inputs' values
  // are freed as the walk passes.
  while let n = pending.popLast() {
    defer { if consume { n.consume() } }
    try visit(n)
    try readiness?.visited(n, cotangents)
  }

  return try targets.map {
    try cotangents[$0.node.id] ?? Tensor(repeating: 0, shape: $0.shape, dtype: $0.dtype, on: $0.backend)
  }
}

/// Which targets' gradients are final as the walk goes: a target's is once every node on the walk
/// that reads it has been visited.
private struct GradientReadiness {
  let targets: [Tensor]
  let ready: (Int, Tensor) throws -> Void
  /// Per target node id: the walk's nodes that read it and are not visited yet.
  var readers: [Int: Int] = [:]
  /// Target indices per target node id (a tensor may be asked for twice).
  var indices: [Int: [Int]] = [:]

  init(targets: [Tensor], nodes: [Node], ready: @escaping (Int, Tensor) throws -> Void) {
    (self.targets, self.ready) = (targets, ready)
    for (i, t) in targets.enumerated() { indices[t.node.id, default: []].append(i) }
    for n in nodes {
      for id in Set(n.inputs.map(\.id)) where indices[id] != nil { readers[id, default: 0] += 1 }
    }
  }

  /// Announces the targets nothing on the walk reads (their gradient is zero, or the seed).
  mutating func announceUnread(_ cotangents: [Int: Tensor]) throws {
    for id in indices.keys.sorted() where readers[id] == nil { try announce(id, cotangents) }
  }

  /// `n` has run its VJP: announces the targets it was the last reader of.
  mutating func visited(_ n: Node, _ cotangents: [Int: Tensor]) throws {
    // In input order (not a Set's, which differs between processes): data-parallel ranks must
    // hear of the gradients in one order.
    var seen = Set<Int>()
    for id in n.inputs.map(\.id) where seen.insert(id).inserted {
      guard let left = readers[id] else { continue }
      if left == 1 {
        readers[id] = nil
        try announce(id, cotangents)
      } else {
        readers[id] = left - 1
      }
    }
  }

  private func announce(_ id: Int, _ cotangents: [Int: Tensor]) throws {
    for i in indices[id] ?? [] {
      let t = targets[i]
      try ready(i, cotangents[id] ?? Tensor(repeating: 0, shape: t.shape, dtype: t.dtype, on: t.backend))
    }
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
