import ArgumentParser
import SegCUDA

/// `unet doctor`: which CUDA components this machine has, where, and how to install what is
/// missing; exits 0 only when the CUDA backend can run here.
struct DoctorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "doctor",
    abstract: "Check the CUDA driver, GPU, NVRTC, cuBLAS and cuDNN (exit status 0 only with a usable GPU).",
    discussion: """
      Libraries are looked for in UNET_CUDA_PATH, the dynamic loader's path, /usr/local/cuda*/lib64, the \
      system library folders, then pip's nvidia-* packages of every python3 on PATH. With a GPU, every kernel \
      is compiled for it (cached in ~/.cache/unetseg/cubin) and one is run and checked.
      """)

  func run() throws {
    let report = DoctorReport.collect()
    print(report.text)
    if !report.usable { throw ExitCode.failure }
  }
}
