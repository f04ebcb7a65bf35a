import Foundation
import Testing

@testable import SegCUDA

// MARK: - Which Pythons are asked for pip's nvidia packages

@Suite struct PythonPackagesTests {
  /// A folder holding a Swift package with a `.venv`, and an executable inside its build folder.
  struct FakePackage {
    let root: URL
    var venvPython: String { root.appendingPathComponent(".venv/bin/python3").path }
    var builtExecutable: String { root.appendingPathComponent(".build/x86_64-unknown-linux-gnu/debug/tool").path }

    init() throws {
      root = try temporaryFolder("python-packages")
      try Data("// swift-tools-version: 6.0\n".utf8).write(to: root.appendingPathComponent("Package.swift"))
      for file in [venvPython, builtExecutable] {
        try FileManager.default.createDirectory(
          atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try PythonPackagesTests.makeExecutable(file)
      }
    }
  }

  /// Writes an empty shell script at `path`, executable.
  static func makeExecutable(_ path: String) throws {
    let made = FileManager.default.createFile(
      atPath: path, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
    try #require(made, "could not write \(path)")
  }

  /// The package that built the running program has its `.venv` asked first; UNET_PYTHON comes
  /// before it, PATH's python3 after it, and a missing file is left out.
  @Test func theBuildingPackagesVenvComesAfterUNETPythonAndBeforePATH() throws {
    let pkg = try FakePackage()
    defer { try? FileManager.default.removeItem(at: pkg.root) }
    let bin = pkg.root.appendingPathComponent("bin")
    try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
    let onPath = bin.appendingPathComponent("python3").path
    try Self.makeExecutable(onPath)
    let chosen = pkg.root.appendingPathComponent("chosen").path
    try Self.makeExecutable(chosen)

    let found = PythonPackages.interpreters(
      environment: ["PATH": "\(bin.path):/nonexistent", "UNET_PYTHON": chosen], executable: pkg.builtExecutable,
      currentDirectory: "/")
    #expect(found == [chosen, pkg.venvPython, onPath])
    let unset = PythonPackages.interpreters(
      environment: ["PATH": "/nonexistent", "UNET_PYTHON": "/nonexistent/python3"], executable: pkg.builtExecutable,
      currentDirectory: "/")
    #expect(unset == [pkg.venvPython])
  }

  /// Run from a package's folder (a build folder elsewhere), its `.venv` is found all the same, once.
  @Test func thePackageInTheCurrentDirectoryIsFound() throws {
    let pkg = try FakePackage()
    defer { try? FileManager.default.removeItem(at: pkg.root) }
    let found = PythonPackages.interpreters(
      environment: ["PATH": "/nonexistent"], executable: "/nonexistent/tool", currentDirectory: pkg.root.path)
    #expect(found == [pkg.venvPython])
    let both = PythonPackages.interpreters(
      environment: ["PATH": "/nonexistent"], executable: pkg.builtExecutable, currentDirectory: pkg.root.path)
    #expect(both == [pkg.venvPython])
  }

  /// The JIT-only cuDNN's lib folder is never handed to the loader (it lacks the legacy API's
  /// sub-libraries); the other packages' lib folders are, in site order.
  @Test func theJITOnlyCuDNNIsNotALibraryFolder() throws {
    let site = try temporaryFolder("site-packages")
    defer { try? FileManager.default.removeItem(at: site) }
    for package in ["cu13", "cudnn", "cudnn_jit"] {
      try FileManager.default.createDirectory(
        at: site.appendingPathComponent("nvidia/\(package)/lib"), withIntermediateDirectories: true)
    }
    #expect(PythonPackages.libraryFolders(in: [site.path, "/nonexistent"]) == [
      "\(site.path)/nvidia/cu13/lib", "\(site.path)/nvidia/cudnn/lib",
    ])
  }
}
