import Foundation
import Testing

@testable import SegCUDA

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Kernels on the host

/// The CUDA backend's kernel sources compiled as host C++ (with a small shim for threadIdx and
/// friends) and run block after block: a `KernelDevice` that checks what the kernels compute, and
/// the backend's launch arguments, on a machine without a GPU. A block's threads are fibers
/// (ucontext) on the calling thread, run in turn from one `__syncthreads()` to the next, so block
/// reductions over shared memory run as on a GPU; warp shuffles are exchanges between two block
/// barriers (every thread of the block must call them, as the kernels do). What it cannot check
/// is the GPU's own arithmetic (exp, log) and the launch on real hardware.
final class HostEmulator: KernelDevice, @unchecked Sendable {
  /// The emulator, built once per machine (cached by source hash in the temporary folder), or the
  /// reason it is not available.
  static let shared: Result<HostEmulator, Error> = Result { try HostEmulator() }

  /// Whether this machine has a C++ compiler to build it. A kernel source that does not compile as
  /// C++ is not a reason to skip: the tests then fail with the compiler's message.
  static var available: Bool { compiler != nil }

  /// The host C++ compiler: c++, g++ or clang++ (the Swift toolchain has one) on PATH.
  static let compiler: String? = {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    for name in ["c++", "g++", "clang++"] {
      for folder in folders where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
        return "\(folder)/\(name)"
      }
    }
    return nil
  }()

  typealias LaunchFunction = @convention(c) (
    UnsafePointer<CChar>, UInt32, UInt32, UnsafeMutablePointer<UnsafeMutableRawPointer?>
  ) -> Int32

  private let launchFunction: LaunchFunction
  private let lock = NSLock()
  private var allocations: Set<UInt64> = []

  var description: String { "host emulator" }

  /// Live allocations (to check that the backend frees what it allocates).
  var liveAllocations: Int { lock.withLock { allocations.count } }

  /// A device of its own (allocations counted apart), over the shared build of the kernels, with
  /// `extra` families (generated kernels) built in too.
  init(extra: [KernelFamily] = []) throws {
    launchFunction = try Self.open(try Self.build(extra: extra))
  }

  // MARK: KernelDevice

  func allocate(_ bytes: Int) throws -> UInt64 {
    var p: UnsafeMutableRawPointer? = nil
    guard posix_memalign(&p, 256, max(bytes, 1)) == 0, let p else { throw CUDAError(.callFailed, "out of host memory") }
    // Garbage, as fresh device memory is, so that a kernel that skips an element shows.
    memset(p, 0xA5, max(bytes, 1))
    let address = UInt64(UInt(bitPattern: p))
    lock.withLock { _ = allocations.insert(address) }
    return address
  }

  func free(_ pointer: UInt64) {
    let known = lock.withLock { allocations.remove(pointer) != nil }
    precondition(known, "the backend freed \(pointer), which it never allocated or freed twice")
    Glibc.free(UnsafeMutableRawPointer(bitPattern: UInt(pointer)))
  }

  func upload(_ bytes: UnsafeRawBufferPointer, to pointer: UInt64) throws {
    guard bytes.count > 0 else { return }
    memcpy(UnsafeMutableRawPointer(bitPattern: UInt(pointer))!, bytes.baseAddress!, bytes.count)
  }

  func download(_ pointer: UInt64, into bytes: UnsafeMutableRawBufferPointer) throws {
    guard bytes.count > 0 else { return }
    memcpy(bytes.baseAddress!, UnsafeRawPointer(bitPattern: UInt(pointer))!, bytes.count)
  }

  func copy(from source: UInt64, to destination: UInt64, bytes: Int) throws {
    guard bytes > 0 else { return }
    memmove(
      UnsafeMutableRawPointer(bitPattern: UInt(destination))!, UnsafeRawPointer(bitPattern: UInt(source))!, bytes)
  }

  func fill(_ pointer: UInt64, byte value: UInt8, bytes: Int) throws {
    guard bytes > 0 else { return }
    memset(UnsafeMutableRawPointer(bitPattern: UInt(pointer))!, Int32(value), bytes)
  }

  /// Few threads per block and few blocks, so that the grid-stride loops take several turns. A
  /// generated kernel (`GeneratedKernels`) is built at its first launch, as NVRTC builds it on a GPU.
  func launch(_ kernel: KernelHandle, count: Int, arguments: [KernelArgument]) throws {
    if kernel.isGenerated {
      return try launch(kernel.name, count: count, arguments: arguments, with: try generatedLauncher(kernel.family))
    }
    try launch(kernel.name, count: count, arguments: arguments)
  }

  /// The same by the kernel's name (the kernel tests launch kernels by name).
  func launch(_ kernel: String, count: Int, arguments: [KernelArgument]) throws {
    try launch(kernel, count: count, arguments: arguments, with: launchFunction)
  }

  /// Launches run one at a time, as on a GPU's stream: tests launch from several threads at once,
  /// and kernels that carry device state from one launch to the next (the row sums' tile
  /// counters, zero between launches) gave garbage sums when two launches shared it.
  private static let streamLock = NSLock()

  private func launch(_ kernel: String, count: Int, arguments: [KernelArgument], with function: LaunchFunction) throws {
    guard count > 0 else { return }
    let threads = 32, blocks = min((count + threads - 1) / threads, 3)
    let status = KernelArgument.withParameters(arguments) { params in
      Self.streamLock.withLock { kernel.withCString { function($0, UInt32(blocks), UInt32(threads), params) } }
    }
    guard status == 0 else { throw CUDAError(.unsupported, "the emulator has no kernel \(kernel)") }
  }

  /// Generated families' libraries (the runtime and the one family), by family name, shared by
  /// every emulator of the process.
  nonisolated(unsafe) private static var generated: [String: LaunchFunction] = [:]
  private static let generatedLock = NSLock()

  private func generatedLauncher(_ family: KernelFamily) throws -> LaunchFunction {
    try Self.generatedLock.withLock {
      if let f = Self.generated[family.name] { return f }
      let f = try Self.open(try Self.build(extra: [family], library: false))
      Self.generated[family.name] = f
      return f
    }
  }

  private static func open(_ library: String) throws -> LaunchFunction {
    guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
      throw CUDAError(.libraryNotFound, "cannot open the emulator \(library): \(String(cString: dlerror()))")
    }
    guard let f = dlsym(handle, "emu_launch") else { throw CUDAError(.symbolNotFound, "emu_launch") }
    return unsafeBitCast(f, to: LaunchFunction.self)
  }

  // MARK: Building

  /// Compiles every family (the library's unless `library` is false, and `extra`) as its own
  /// translation unit (in parallel) and links them with the runtime into a shared library;
  /// returns its path.
  static func build(extra: [KernelFamily] = [], library includesLibrary: Bool = true) throws -> String {
    guard let cxx = compiler else { throw CUDAError(.libraryNotFound, "no C++ compiler for the kernel emulator") }
    let units = [("runtime", EmulatorSource.runtime)]
      + ((includesLibrary ? KernelLibrary.families : []) + extra).map { f in
        (
          f.name,
          "#include \"emu.h\"\n" + f.source + "\n"
            + f.kernels.map { "static int emu_reg_\($0) = emuRegisterKernel(\"\($0)\", &\($0));" }.joined(separator: "\n")
            + "\n"
        )
      }
    let key = NVRTCCompiler.hash(EmulatorSource.header + units.map(\.1).joined())
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("segcuda-emulator-\(key)")
    let library = dir.appendingPathComponent("libemu.so").path
    if FileManager.default.fileExists(atPath: library) { return library }

    let work = FileManager.default.temporaryDirectory.appendingPathComponent("segcuda-emulator-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: work) }
    try EmulatorSource.header.write(to: work.appendingPathComponent("emu.h"), atomically: true, encoding: .utf8)
    var processes: [(String, Process, Pipe)] = []
    for (name, source) in units {
      try source.write(to: work.appendingPathComponent("\(name).cpp"), atomically: true, encoding: .utf8)
      let p = Process()
      p.executableURL = URL(fileURLWithPath: cxx)
      p.arguments = ["-std=c++17", "-O1", "-ffp-contract=off", "-fPIC", "-w", "-c", "\(name).cpp", "-o", "\(name).o"]
      p.currentDirectoryURL = work
      let pipe = Pipe()
      p.standardOutput = pipe
      p.standardError = pipe
      try p.run()
      processes.append((name, p, pipe))
    }
    for (name, p, pipe) in processes {
      let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      p.waitUntilExit()
      guard p.terminationStatus == 0 else {
        throw CUDAError(.compileFailed, "the emulator could not compile \(name):\n\(output.prefix(6000))")
      }
    }
    let link = Process()
    link.executableURL = URL(fileURLWithPath: cxx)
    link.arguments = ["-shared", "-o", "libemu.so"] + units.map { "\($0.0).o" }
    link.currentDirectoryURL = work
    try link.run()
    link.waitUntilExit()
    guard link.terminationStatus == 0 else { throw CUDAError(.compileFailed, "the emulator could not link") }
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let tmp = dir.appendingPathComponent("libemu.so.\(getpid()).tmp").path
    try FileManager.default.copyItem(atPath: work.appendingPathComponent("libemu.so").path, toPath: tmp)
    guard rename(tmp, library) == 0 else { throw CUDAError(.callFailed, "cannot place \(library)") }
    return library
  }
}

// MARK: - The shim

/// C++ that lets the CUDA kernel sources compile and run on the host.
enum EmulatorSource {
  static let header = #"""
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    #include <cstddef>
    #include <type_traits>
    #include <utility>

    struct EmuDim3 { unsigned x = 0, y = 1, z = 1; };
    extern thread_local EmuDim3 threadIdx, blockIdx, blockDim, gridDim;

    #define __global__
    #define __device__
    // One copy per launching thread: the fibers of a block share it, concurrent launches do not.
    #define __shared__ static thread_local
    #define __forceinline__ inline
    #define __noinline__
    #define __align__(n) alignas(n)

    inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
    inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
    // CUDA's round-to-nearest single operations (never fused; the emulator builds with
    // -ffp-contract=off so the host compiler does not fuse them either).
    inline float __fadd_rn(float a, float b) { return a + b; }
    inline float __fsub_rn(float a, float b) { return a - b; }
    inline float __fmul_rn(float a, float b) { return a * b; }
    inline float __fdiv_rn(float a, float b) { return a / b; }
    inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
      unsigned long long old = *p;
      if (v < old) *p = v;
      return old;
    }

    // Blocks run one after another on one thread: a ticket is a plain increment, a fence nothing.
    inline unsigned atomicAdd(unsigned* p, unsigned v) {
      const unsigned old = *p;
      *p = old + v;
      return old;
    }
    inline void __threadfence() {}

    // The block barrier: the calling fiber waits until every live thread of its block is here.
    void __syncthreads();

    // Warp shuffle down: v of lane + delta within the warp, own v past the warp's end. Every
    // thread of the block calls it (an exchange between two block barriers).
    template <class T> T __shfl_down_sync(unsigned, T v, int delta) {
      static thread_local T slots[1024];
      const unsigned t = threadIdx.x;
      slots[t] = v;
      __syncthreads();
      const bool inside = (t & 31) + delta < 32 && t + delta < blockDim.x;
      const T r = inside ? slots[t + delta] : v;
      __syncthreads();
      return r;
    }

    typedef void (*EmuInvoker)(void* fn, void** args);
    void emuRegister(const char* name, void* fn, EmuInvoker invoker);

    // Calls f with each parameter read from the buffer args[i] points to, as cuLaunchKernel does.
    template <class... A, std::size_t... I>
    void emuInvokeImpl(void (*f)(A...), void** args, std::index_sequence<I...>) {
      f(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
    }
    template <class... A> void emuInvoke(void* fn, void** args) {
      emuInvokeImpl(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>{});
    }
    template <class... A> int emuRegisterKernel(const char* name, void (*f)(A...)) {
      emuRegister(name, reinterpret_cast<void*>(f), &emuInvoke<A...>);
      return 0;
    }
    """#

  static let runtime = #"""
    #include "emu.h"
    #include <ucontext.h>
    #include <map>
    #include <string>
    #include <vector>

    thread_local EmuDim3 threadIdx, blockIdx, blockDim, gridDim;

    static std::map<std::string, std::pair<void*, EmuInvoker>>& table() {
      static std::map<std::string, std::pair<void*, EmuInvoker>> t;
      return t;
    }

    void emuRegister(const char* name, void* fn, EmuInvoker invoker) { table()[name] = {fn, invoker}; }

    // ---- Fibers: a block's threads, each run until its next barrier or its end ----
    struct EmuFiber { ucontext_t context; bool done; };
    struct EmuBlock {
      ucontext_t scheduler;
      std::vector<EmuFiber> fibers;
      std::vector<char> stacks;
      unsigned current = 0;
      void* fn = nullptr;
      EmuInvoker invoker = nullptr;
      void** args = nullptr;
    };
    static thread_local EmuBlock block;
    static const size_t emuStack = 256 * 1024;

    static void emuFiberMain() {
      block.invoker(block.fn, block.args);
      block.fibers[block.current].done = true;  // returns to uc_link, the scheduler
    }

    void __syncthreads() {
      EmuFiber& f = block.fibers[block.current];
      swapcontext(&f.context, &block.scheduler);
    }

    extern "C" int emu_launch(const char* name, unsigned blocks, unsigned threads, void** args) {
      auto it = table().find(name);
      if (it == table().end()) return -1;
      gridDim.x = blocks;
      blockDim.x = threads;
      block.fn = it->second.first;
      block.invoker = it->second.second;
      block.args = args;
      block.fibers.resize(threads);
      block.stacks.resize(threads * emuStack);
      for (unsigned b = 0; b < blocks; ++b) {
        for (unsigned t = 0; t < threads; ++t) {
          EmuFiber& f = block.fibers[t];
          f.done = false;
          getcontext(&f.context);
          f.context.uc_stack.ss_sp = block.stacks.data() + t * emuStack;
          f.context.uc_stack.ss_size = emuStack;
          f.context.uc_link = &block.scheduler;
          makecontext(&f.context, emuFiberMain, 0);
        }
        // Rounds: each live thread runs to its next barrier (or its end); a round ends when all
        // have, which is the barrier's release.
        for (bool live = true; live;) {
          live = false;
          for (unsigned t = 0; t < threads; ++t) {
            if (block.fibers[t].done) continue;
            blockIdx.x = b;
            threadIdx.x = t;
            block.current = t;
            swapcontext(&block.scheduler, &block.fibers[t].context);
            live = live || !block.fibers[t].done;
          }
        }
      }
      return 0;
    }
    """#
}
