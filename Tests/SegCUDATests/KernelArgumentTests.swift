import Foundation
import SegCore
import Testing

@testable import SegCUDA

// MARK: - The parameter block of a launch

@Suite struct KernelArgumentTests {
  static let arguments: [KernelArgument] = [
    .pointer(0x1234_5678_9abc), .int64(-5), .uint64(7), .int32(-3), .float(1.5), .double(-2.25),
    .dims([2, 3, 4]), .vec([5, -6]), .int64s([9, 8, 7]),
  ]

  /// Each argument is written into the one block as its bytes, at a 16-byte aligned address, one
  /// pointer per argument in order.
  @Test func parametersHoldEachArgumentsBytes() {
    KernelArgument.withParameters(Self.arguments) { params in
      for (i, a) in Self.arguments.enumerated() {
        let p = params[i]!
        #expect(UInt(bitPattern: p) % 16 == 0)
        let written = Array(UnsafeRawBufferPointer(start: p, count: a.bytes.count))
        #expect(written == a.bytes, "argument \(i): \(a)")
        #expect(a.byteCount == a.bytes.count)
      }
    }
  }

  /// Typed handles resolve to the kernels of those names, every kernel has a handle by name and
  /// one by (op, dtype), and a kernel no family instantiates is an error that names it.
  @Test func typedHandlesAreTheKernelsOfThoseNames() throws {
    #expect(try KernelLibrary.handle(.adam, .f16).name == "adam_f16")
    #expect(try KernelLibrary.handle(.multiAdam, .f32).name == "multiAdam_f32")
    #expect(try KernelLibrary.handle(.copy, .bf16).name == "copy_b2")
    #expect(try KernelLibrary.handle(.cast, .u8, .f16).name == "cast_u8_f16")
    #expect(try KernelLibrary.handle(.oneHot, .i32, .f32).name == "oneHot_i32_f32")
    #expect(try KernelLibrary.handle(.adamStatsFinish, .f32).name == "adamStatsFinish")
    #expect(try KernelLibrary.handle(.softmaxBlock, .f64).family.name == "reduce")
    for (i, k) in KernelLibrary.allKernels.enumerated() { #expect(KernelLibrary.handle(k)?.index == i) }
    #expect(KernelLibrary.handle("noSuchKernel") == nil)
    var typed = Set<Int>()
    for op in KernelOp.allCases {
      for a in DType.allCases {
        for b in DType.allCases { if let h = try? KernelLibrary.handle(op, a, b) { typed.insert(h.index) } }
      }
    }
    #expect(typed == Set(KernelLibrary.allKernels.indices), "kernels with no typed key")
    #expect(throws: CUDAError.self) { try KernelLibrary.handle(.add, .i32) }
    #expect(throws: CUDAError.self) { try KernelLibrary.handle(.cast, .f32, .f32) }
  }
}
