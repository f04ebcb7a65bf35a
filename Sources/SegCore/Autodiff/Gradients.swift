// MARK: - Reverse-mode autodiff

/// Gradients of `output` with respect to each of `targets`, by walking the graph backward and
/// applying each op's VJP. `seed` is the cotangent of `output` (default: ones, for a scalar loss).
/// A target that `output` does not depend on gets zeros. With `keepGraph` the gradient nodes record
/// their inputs, so that gradients of gradients can be taken; otherwise they do not, which saves
/// memory.
public func gradients(
  of output: Tensor, wrt targets: [Tensor], seed: Tensor? = nil, keepGraph: Bool = false
) throws -> [Tensor] {
  if keepGraph { return try backward(output, targets, seed) }
  return try withoutGradients { try backward(output, targets, seed) }
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

private func backward(_ output: Tensor, _ targets: [Tensor], _ seed: Tensor?) throws -> [Tensor] {
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

  // Every node the output depends on, consumers before producers (ids are a topological order).
  var reachable: [ObjectIdentifier: Node] = [:]
  var stack = [output.node]
  while let n = stack.popLast() {
    guard reachable.updateValue(n, forKey: ObjectIdentifier(n)) == nil else { continue }
    stack.append(contentsOf: n.inputs)
  }
  let order = reachable.values.sorted { $0.id > $1.id }

  // Only nodes through which some target is reached need cotangents.
  let targetIDs = Set(targets.map { ObjectIdentifier($0.node) })
  var leads = Set<ObjectIdentifier>()
  for n in order.reversed() {
    let id = ObjectIdentifier(n)
    if targetIDs.contains(id) || n.inputs.contains(where: { leads.contains(ObjectIdentifier($0)) }) {
      leads.insert(id)
    }
  }

  var cotangents: [ObjectIdentifier: Tensor] = [ObjectIdentifier(output.node): cotangentSeed]
  for n in order {
    let id = ObjectIdentifier(n)
    guard leads.contains(id), let op = n.op, !n.inputs.isEmpty, let g = cotangents[id] else { continue }
    let inputs = n.inputs.map(Tensor.init(node:))
    let inputGrads = try op.vjp(inputs, output: Tensor(node: n), cotangent: g)
    precondition(inputGrads.count == inputs.count, "\(op): vjp returned \(inputGrads.count) cotangents for \(inputs.count) inputs")
    for (input, grad) in zip(inputs, inputGrads) {
      let inID = ObjectIdentifier(input.node)
      guard let grad, leads.contains(inID) else { continue }
      precondition(grad.type == input.type, "\(op): vjp gave \(grad.type) for an input of \(input.type)")
      cotangents[inID] = try cotangents[inID].map { try $0 + grad } ?? grad
    }
    if !targetIDs.contains(id) { cotangents[id] = nil }
  }

  return try targets.map {
    try cotangents[ObjectIdentifier($0.node)] ?? Tensor(repeating: 0, shape: $0.shape, dtype: $0.dtype, on: $0.backend)
  }
}
