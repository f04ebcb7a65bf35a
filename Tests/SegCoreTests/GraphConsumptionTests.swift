import Foundation
import SegCore
import SegTestSupport
import Testing

// MARK: - The gradient walk frees the graph behind it

@Suite struct GraphConsumptionTests {
  /// y = sum(exp(x * 2)); returns y and a weak reference to the exp node's value holder.
  private func chain(_ x: Tensor) throws -> (loss: Tensor, middle: () -> Node?) {
    var e: Tensor? = try exp(x * 2)
    weak var middle = e!.node
    let loss = try sum(e!)
    e = nil
    return (loss, { middle })
  }

  @Test func intermediateValuesAreFreedWhileTheLossIsHeld() throws {
    let x = try Tensor(shape: [3], floats: [0.1, 0.2, 0.3])
    let (loss, middle) = try chain(x)
    #expect(middle() != nil, "the loss's graph holds its inputs until the walk")
    let g = try gradients(of: loss, wrt: [x])
    #expect(middle() == nil)
    #expect(loss.node.isConsumed)
    expectClose(try g[0].host(), try HostTensor(shape: [3], floats: [Float(0.1), 0.2, 0.3].map { 2 * Foundation.exp(2 * $0) }), "d/dx")
  }

  @Test func aSecondWalkThroughAConsumedGraphIsRefused() throws {
    let x = try Tensor(shape: [3], floats: [0.1, 0.2, 0.3])
    let (loss, _) = try chain(x)
    _ = try gradients(of: loss, wrt: [x])
    #expect { try gradients(of: loss, wrt: [x]) } throws: {
      "\($0)".contains("consumed by an earlier gradients(of:wrt:) call; pass keepGraph: true")
    }
  }

  @Test func keepGraphKeepsItWhole() throws {
    let x = try Tensor(shape: [3], floats: [0.1, 0.2, 0.3])
    let (loss, middle) = try chain(x)
    // The kept gradients record their inputs (gradients of gradients), the exp node among them.
    let first = try gradients(of: loss, wrt: [x], keepGraph: true)[0].floats()
    #expect(middle() != nil)
    let second = try gradients(of: loss, wrt: [x])
    #expect(try second[0].floats() == first)
    #expect(middle() == nil)
  }

  /// A value that no VJP reads is freed as soon as no tensor holds it; one that a VJP reads stays
  /// until that VJP has run. The gradients are the same.
  @Test func valuesNoVJPReadsAreFreedAtOnce() throws {
    let x = try Tensor(shape: [4], floats: [-1, 0.5, 2, -3])
    let w = try Tensor(shape: [4], floats: [2, 3, 4, 5])
    var product: Tensor? = try x * w  // mul's VJP reads x and w, not its output
    var shifted: Tensor? = try product! + w  // add reads nothing: the product is not needed
    let productNode = product!.node, shiftedNode = shifted!.node
    let activated = try relu(shifted!)  // relu reads its output only
    product = nil
    shifted = nil
    #expect(!productNode.holdsValue && !shiftedNode.holdsValue)
    #expect(activated.node.holdsValue)
    let loss = try sum(activated * activated)
    let g = try gradients(of: loss, wrt: [x, w])
    // d/dx = 2 relu(s) w, d/dw = 2 relu(s) (x + 1), with s = x w + w.
    let s: [Float] = [-1 * 2 + 2, 0.5 * 3 + 3, 2 * 4 + 4, -3 * 5 + 5]
    #expect(try g[0].floats() == zip(s, [2, 3, 4, 5]).map { 2 * max($0, 0) * $1 })
    #expect(try g[1].floats() == zip(s, [-1, 0.5, 2, -3]).map { 2 * max($0, 0) * ($1 + 1) })
  }
}
