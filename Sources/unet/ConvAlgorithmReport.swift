import ArgumentParser
import SegCPU
import SegCore

// MARK: - --conv-algorithm

extension ConvAlgorithm: ExpressibleByArgument {}

/// The CPU backend's 3x3 stride-1 convolutions run so far and the algorithm of each (direct or
/// Winograd), one line per direction and shape, for `--profile`; nil on another backend or before
/// any ran.
func convAlgorithmTable(_ backend: any Backend) -> String? {
  guard let cpu = backend as? CPUBackend, !cpu.convAlgorithmLog.isEmpty else { return nil }
  var lines = ["3x3 stride-1 convolutions (--conv-algorithm \(cpu.options.convAlgorithm.rawValue))    calls  algorithm"]
  for use in cpu.convAlgorithmLog {
    lines.append(
      "\(use.direction) \(use.shape)".padding(toLength: 58, withPad: " ", startingAt: 0)
        + "\(use.calls)".leftPadded(to: 6) + "  \(use.algorithm)")
  }
  return lines.joined(separator: "\n")
}

/// The same as "direction shape: algorithm" strings, for a benchmark's JSON; nil off the CPU.
func convAlgorithmList(_ backend: any Backend) -> [String]? {
  guard let cpu = backend as? CPUBackend else { return nil }
  return cpu.convAlgorithmLog.map { "\($0.direction) \($0.shape): \($0.algorithm)" }
}

extension String {
  fileprivate func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
