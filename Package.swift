// swift-tools-version: 6.0
import PackageDescription

let package = Package(
  name: "UNetSeg",
  products: [
    .executable(name: "unet", targets: ["unet"]),
    .library(name: "SegCore", targets: ["SegCore"]),
    .library(name: "SegCPU", targets: ["SegCPU"]),
    .library(name: "SegCUDA", targets: ["SegCUDA"]),
    .library(name: "SegCheck", targets: ["SegCheck"]),
  ],
  dependencies: [
    // 1.8: options that are also flags (`--augment` alone or with a list).
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
    // The ONNX export's and the TensorBoard callback's protobuf messages (generated code in Sources).
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
  ],
  targets: [
    // MARK: - C libraries
    .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
    .systemLibrary(name: "CTIFF", path: "Sources/CTIFF", providers: [.apt(["libtiff-dev"])]),
    .systemLibrary(name: "CPNG", path: "Sources/CPNG", providers: [.apt(["libpng-dev"])]),
    // Our own declarations of the CUDA entry points, filled by dlsym: nothing CUDA is needed to build.
    .systemLibrary(name: "CCUDA", path: "Sources/CCUDA"),
    // Our own declarations of the Open MPI entry points, filled by dlsym: nothing MPI is needed to build.
    .systemLibrary(name: "CMPI", path: "Sources/CMPI"),
    // mremap(2), which Swift cannot call directly (variadic), and madvise(2).
    .systemLibrary(name: "CHostMemory", path: "Sources/CHostMemory"),
    // The Winograd convolution's transforms and products, compiled per instruction set (AVX-512,
    // AVX2) with target attributes: Swift's SIMD types compile for the baseline x86-64 only.
    .target(name: "CWinograd"),
    // Kernels over oneDNN's blocked activations that oneDNN has no primitive for, compiled the same way.
    .target(name: "CBlocked"),

    // MARK: - Library
    .target(name: "SegCore"),
    .target(name: "SegCPU", dependencies: ["SegCore", "CDNNL", "CHostMemory", "CWinograd", "CBlocked"]),
    .target(name: "SegCUDA", dependencies: ["SegCore", "CCUDA"]),
    .target(name: "SegNN", dependencies: ["SegCore"]),
    .target(name: "SegData", dependencies: ["SegCore", "CTIFF", "CPNG"]),
    // Data-parallel training across processes: MPI loaded at run time, the gradient all-reduce.
    .target(name: "SegDistributed", dependencies: ["SegCore", "CMPI"]),
    .target(
      name: "SegTrain",
      dependencies: ["SegCore", "SegNN", "SegData", "SegDistributed", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    // The trained U-Net as an ONNX model.
    .target(name: "SegExport", dependencies: ["SegCore", "SegNN", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    // Backend conformance and the training comparison of `unet doctor --check`, for any backend.
    .target(name: "SegCheck", dependencies: ["SegCore", "SegNN", "SegData", "SegTrain"]),

    // MARK: - Tool
    .executableTarget(
      name: "unet",
      dependencies: [
        "SegCore", "SegCPU", "SegCUDA", "SegNN", "SegData", "SegTrain", "SegCheck", "SegExport", "SegDistributed",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // MARK: - Fuzzing
    // The readers of files users hand the tool, under libFuzzer (scripts/fuzz.sh builds them with
    // -sanitize=fuzzer -D FUZZING); an ordinary build makes plain programs that run the corpus once.
    .systemLibrary(name: "CFuzzer", path: "Fuzz/CFuzzer"),
    .target(name: "FuzzSupport", dependencies: ["CFuzzer"], path: "Fuzz/FuzzSupport"),
    .executableTarget(name: "FuzzTIFF", dependencies: ["SegData", "FuzzSupport"], path: "Fuzz/FuzzTIFF"),
    .executableTarget(name: "FuzzPNG", dependencies: ["SegData", "FuzzSupport"], path: "Fuzz/FuzzPNG"),
    .executableTarget(name: "FuzzSafeTensors", dependencies: ["SegTrain", "FuzzSupport"], path: "Fuzz/FuzzSafeTensors"),

    // MARK: - Tests
    .target(name: "SegTestSupport", dependencies: ["SegCore", "SegCheck"], path: "Tests/SegTestSupport"),
    .testTarget(name: "SegCoreTests", dependencies: ["SegCore", "SegTestSupport"]),
    .testTarget(name: "SegCPUTests", dependencies: ["SegCore", "SegCPU", "SegNN", "SegTestSupport"]),
    .testTarget(name: "SegCUDATests", dependencies: ["SegCore", "SegCUDA", "SegNN", "SegTrain", "SegCheck", "SegTestSupport"]),
    .testTarget(name: "SegNNTests", dependencies: ["SegCore", "SegNN", "SegTestSupport"]),
    .testTarget(name: "SegDataTests", dependencies: ["SegData"]),
    .testTarget(name: "SegTrainTests", dependencies: ["SegCore", "SegCPU", "SegData", "SegNN", "SegTrain", "SegTestSupport"]),
    .testTarget(name: "SegCheckTests", dependencies: ["SegCore", "SegCPU", "SegCheck", "SegTestSupport"]),
    .testTarget(
      name: "SegExportTests", dependencies: ["SegCore", "SegCPU", "SegNN", "SegData", "SegTrain", "SegExport", "SegTestSupport"]),
    .testTarget(name: "UNetCLITests", dependencies: ["unet", "SegData"]),
    .testTarget(name: "SegDistributedTests", dependencies: ["SegDistributed", "SegCore", "SegData", "SegTrain", "unet"]),
  ],
  swiftLanguageModes: [.v6]
)
