import Foundation
import SegCore
import SegTestSupport
import Testing

// MARK: - A VJP builds only the cotangents it is asked for

@Suite struct GradientMaskTests {
  /// Calls count by op kind while `body` runs.
  private func counted<T>(_ body: () throws -> T) rethrows -> (T, [OpKind: Int]) {
    let profiler = OpProfiler()
    let result = try OpProfiler.record(into: profiler, body)
    return (result, Dictionary(uniqueKeysWithValues: profiler.ranked.map { ($0.kind, $0.entry.calls) }))
  }

  /// Every case of the op list, under every mask of its op's inputs: nil exactly where an input is
  /// not needed, bit for bit the all-needed cotangent where it is, no op run for an empty mask and
  /// never more ops than the all-needed VJP runs.
  @Test(arguments: OpCases.all.indices)
  func partialMasksDropExactlyTheUnneededCotangents(_ index: Int) throws {
    let c = OpCases.all[index]
    let backend = ReferenceBackend.shared
    let dtype = c.dtypes[0]
    let xs = try c.hostInputs(dtype).map { try Tensor($0, on: backend) }
    let y = try c.apply(xs, backend, dtype)
    let op = try #require(y.node.op, "\(c): the case's output is a leaf")
    let inputs = y.node.inputs.map(Tensor.init(node:))
    let cotangent = try Tensor(randomHost(y.type, seed: UInt64(index) + 101), on: backend)
    func vjp(_ needed: [Bool]) -> (Result<[HostTensor?], any Error>, ops: Int) {
      let (result, calls) = counted {
        Result { try op.vjp(inputs, output: y, cotangent: cotangent, needed: needed).map { try $0?.host() } }
      }
      return (result, calls.values.reduce(0, +))
    }
    let (full, fullOps) = vjp(inputs.map { _ in true })

    for bits in 0..<(1 << inputs.count) {
      let needed = inputs.indices.map { bits & (1 << $0) != 0 }
      let (partial, ops) = vjp(needed)
      if !needed.contains(true) { #expect(ops == 0, "\(c) \(needed): ran \(ops) ops for no cotangent") }
      #expect(ops <= fullOps, "\(c) \(needed): \(ops) ops, more than the \(fullOps) of the all-needed VJP")
      switch (full, partial) {
      case (.success(let all), .success(let some)):
        #expect(some.count == inputs.count, "\(c) \(needed): \(some.count) cotangents for \(inputs.count) inputs")
        for i in inputs.indices where i < some.count {
          if needed[i] {
            #expect(some[i]?.type == all[i]?.type, "\(c) \(needed): input \(i)'s cotangent type")
            #expect(
              some[i]?.doubles == all[i]?.doubles, "\(c) \(needed): input \(i)'s cotangent is not the all-needed one")
          } else {
            #expect(some[i] == nil, "\(c) \(needed): input \(i) was not needed but got a cotangent")
          }
        }
      case (.failure, .failure):
        // An op without a gradient rule (max pooling's backward) refuses any mask that asks for one.
        #expect(needed.contains(true), "\(c) \(needed): a VJP asked for nothing must not throw")
      case (.failure(let e), .success):
        #expect(!needed.contains(true), "\(c) \(needed): succeeded where the all-needed VJP threw \(e)")
      case (.success, .failure(let e)):
        Issue.record("\(c) \(needed): threw \(e) where the all-needed VJP succeeded")
      }
    }
  }

  /// The walk asks a conv for its input's cotangent only when the input leads to a target: a
  /// network's first conv over the image runs no backward-data convolution.
  @Test func aConvOverAnImageRunsNoBackwardData() throws {
    let image = try Tensor(randomHost(TensorType([2, 6, 5, 1], .f32), seed: 1))
    let w0 = try Tensor(randomHost(TensorType([3, 3, 1, 4], .f32), seed: 2))
    let w1 = try Tensor(randomHost(TensorType([3, 3, 4, 2], .f32), seed: 3))
    func loss() throws -> Tensor { try sum(conv2d(conv2d(image, w0, activation: .relu), w1)) }

    let (onlyFirst, calls) = try counted { try gradients(of: loss(), wrt: [w0]) }
    // The second conv's input leads to w0, the first's (the image) leads nowhere.
    #expect(calls[.conv2dBackwardData] == 1)
    #expect(calls[.conv2dBackwardFilter] == 1)
    let (both, bothCalls) = try counted { try gradients(of: loss(), wrt: [w0, w1, image]) }
    #expect(bothCalls[.conv2dBackwardData] == 2)
    #expect(bothCalls[.conv2dBackwardFilter] == 2)
    #expect(try onlyFirst[0].floats() == both[0].floats())
  }

  /// A node no target lies behind runs no VJP, yet the walk still consumes it, so that the values
  /// behind it are freed as before; a target made from constants gets its cotangent without its
  /// own VJP running.
  @Test func skippedNodesAreStillConsumed() throws {
    let x = try Tensor(shape: [3], floats: [0.5, -1, 2])
    let c = try Tensor(shape: [3], floats: [1, 2, 3])
    var scaled: Tensor? = try exp(c)  // a constant branch: no target behind it
    let scaledNode = scaled!.node
    let loss = try sum(x * scaled!)
    scaled = nil
    let (g, calls) = try counted { try gradients(of: loss, wrt: [x, Tensor(node: scaledNode)]) }
    #expect(try g[0].floats() == [1, 2, 3].map { Float(Foundation.exp(Double($0))) })
    #expect(try g[1].floats() == [0.5, -1, 2])
    #expect(calls[.exp] == nil && calls[.mul] == 2, "exp's VJP (a mul by exp(c)) did not run: \(calls)")
    #expect(scaledNode.isConsumed && loss.node.isConsumed)
    #expect(scaledNode.inputs.isEmpty)
  }
}
