import SegCore
import Testing

// MARK: - Gradients announced as they become final

@Suite struct GradientReadyTests {
  /// Each target is announced once, with its final gradient (the one returned), and a target near
  /// the output is announced before the walk reaches the targets near the input.
  @Test func eachGradientIsAnnouncedOnceWhenFinal() throws {
    let x = try Tensor(shape: [2], floats: [1, 2])
    let w0 = try Tensor(shape: [2], floats: [0.5, -1])
    let w1 = try Tensor(shape: [2], floats: [2, 3])
    let unused = try Tensor(shape: [2], floats: [7, 7])
    // w0 is read three times (its gradient sums the paths); w1 only at the end, near the loss.
    let h = try (x * w0) * w0 + x * w0
    let loss = try sum(h * w1)
    var announced: [(Int, [Float])] = []
    let grads = try gradients(of: loss, wrt: [w0, w1, unused]) { i, g in announced.append((i, try g.floats())) }
    #expect(announced.map(\.0).sorted() == [0, 1, 2])
    for (i, g) in announced { #expect(g == (try grads[i].floats()), "target \(i)") }
    #expect(announced.firstIndex { $0.0 == 1 }! < announced.firstIndex { $0.0 == 0 }!, "\(announced.map(\.0))")
    // d/dw0 of sum(w1 * (x w0^2 + x w0)) = w1 * x * (2 w0 + 1)
    let expected: [Float] = [4, -6]
    #expect(try grads[0].floats() == expected)
    #expect(try grads[2].floats() == [0, 0])
  }
}
