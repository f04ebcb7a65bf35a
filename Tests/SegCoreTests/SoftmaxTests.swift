import Foundation
import SegCore
import SegTestSupport
import Testing

// MARK: - Softmax and log-softmax over the last axis

@Suite struct SoftmaxTests {
  @Test func gradientsInF64() throws {
    let x = randomHost(TensorType([2, 3, 5], .f64), seed: 11, in: -3..<3)
    let nhwc = randomHost(TensorType([3, 1, 2, 3], .f64), seed: 12, in: -3..<3)
    let single = randomHost(TensorType([3, 1], .f64), seed: 13)
    for (name, input) in [("rank 3", x), ("NHWC", nhwc), ("one channel", single)] {
      try checkVJP("softmax \(name)", inputs: [input]) { try softmax($0[0]) }
      try checkVJP("logSoftmax \(name)", inputs: [input]) { try logSoftmax($0[0]) }
    }
  }

  @Test func handMadeValues() throws {
    // softmax([0, ln 3]) = [1/4, 3/4] in every row.
    let ln3 = Foundation.log(3.0)
    let x = try Tensor(HostTensor(type: TensorType([2, 2], .f64), doubles: [0, ln3, 5, 5 + ln3]))
    expectClose(try softmax(x).host(), HostTensor(type: x.type, doubles: [0.25, 0.75, 0.25, 0.75]), atol: 1e-12, "softmax")
    let logs = [Foundation.log(0.25), Foundation.log(0.75)]
    expectClose(try logSoftmax(x).host(), HostTensor(type: x.type, doubles: logs + logs), atol: 1e-12, "logSoftmax")
  }

  @Test func largeLogitsDoNotOverflow() throws {
    // Without subtracting the maximum, exp(1000) is infinite in f32 and f64 alike.
    let x = try Tensor(shape: [2, 2], floats: [1000, 1000 + Float(Foundation.log(3.0)), -1000, -1000])
    let s = try softmax(x).host().doubles
    #expect(s.allSatisfy { $0.isFinite }, "softmax of large logits: \(s)")
    expectClose(try softmax(x).host(), try HostTensor(shape: [2, 2], floats: [0.25, 0.75, 0.5, 0.5]), "softmax")
    let logs = [0.25, 0.75, 0.5, 0.5].map { Float(Foundation.log($0)) }
    expectClose(try logSoftmax(x).host(), try HostTensor(shape: [2, 2], floats: logs), "logSoftmax")
  }

  @Test func rowsSumToOneAndLogSoftmaxIsItsLog() throws {
    let h = randomHost(TensorType([2, 3, 3, 4], .f32), seed: 5, in: -4..<4)
    let x = try Tensor(h)
    let s = try softmax(x)
    expectClose(try sum(s, axes: [-1]).host(), HostTensor(type: TensorType([2, 3, 3], .f32), repeating: 1), "row sums")
    expectClose(try exp(logSoftmax(x)).host(), try s.host(), "exp(logSoftmax)")
    #expect(s.type == x.type)
  }

  @Test func errorsNameTheOpAndOperands() throws {
    let ints = try Tensor(HostTensor(shape: [2, 3], data: .i32([1, 2, 3, 4, 5, 6])))
    #expect { try softmax(ints) } throws: {
      "\($0)" == "softmax: i32[2,3]: operands must share one floating-point dtype; use cast(_:to:)"
    }
    #expect { try logSoftmax(ints) } throws: { "\($0)".hasPrefix("logSoftmax: i32[2,3]: ") }
    let scalar = try Tensor(scalar: 1)
    #expect { try softmax(scalar) } throws: {
      "\($0)" == "softmax: f32[]: needs rank >= 1: it normalises over the last axis"
    }
  }
}
