import Foundation
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

  /// Kernel names for launches are the families' own strings, and every kernel has a handle.
  @Test func launchNamesAreTheKernelsNames() {
    #expect(KernelNames.launchName("adam", .f16) == "adam_f16")
    #expect(KernelNames.launchName("multiAdam", .f32) == "multiAdam_f32")
    for (i, k) in KernelLibrary.allKernels.enumerated() { #expect(KernelLibrary.handle(k) == i) }
    #expect(KernelLibrary.handle("noSuchKernel") == nil)
  }
}
