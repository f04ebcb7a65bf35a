import Foundation
import SegCore

// MARK: - One training run per model directory

/// A training run's exclusive hold on its model directory: an `flock` on
/// `<model-dir>/.unet-train.lock`, a file holding the holder's process id and host. The kernel
/// drops the lock when its process ends, however it ends (a kill -9, a crash, a preempted
/// machine), so a lock taken proves that no live run of ours writes in the directory: what
/// temporary files are there are of dead runs. The same lock keeps a second run from training
/// into a directory another is writing. The lock file is removed when the run releases it.
public final class ModelDirectoryLock {
  /// The lock file's name in the model directory.
  public static let fileName = ".unet-train.lock"

  /// The lock file.
  public let url: URL
  private var fd: Int32

  /// Takes the lock of `directory` (which must exist). Throws a `SettingError` naming
  /// --model-dir and the holder when another run holds it; returns nil where the file system
  /// cannot lock files (some network file systems), which the caller then does without.
  public static func take(_ directory: URL) throws -> ModelDirectoryLock? {
    let url = directory.appendingPathComponent(fileName)
    while true {
      let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
      guard fd >= 0 else {
        throw SettingError(.modelDirectory, value: directory.path, "cannot create its lock file \(fileName): \(String(cString: strerror(errno)))")
      }
      guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
        let why = errno
        let holder = ModelDirectoryLock.holder(fd)
        close(fd)
        if why == EWOULDBLOCK || why == EAGAIN {
          throw SettingError(
            .modelDirectory, value: directory.path,
            "is in use by another unet train (\(holder ?? "holder unknown")) writing its checkpoints there; wait for it to end, or choose another folder")
        }
        return nil
      }
      // A run ending at this moment may have removed the file after this one opened it: the lock
      // only counts on the file that is there now.
      var held = stat(), there = stat()
      guard fstat(fd, &held) == 0, stat(url.path, &there) == 0, held.st_ino == there.st_ino, held.st_dev == there.st_dev else {
        close(fd)
        continue
      }
      var host = [CChar](repeating: 0, count: 256)
      gethostname(&host, host.count - 1)
      let line = "process \(getpid()) on host \(String(cString: host))\n"
      ftruncate(fd, 0)
      _ = line.withCString { pwrite(fd, $0, strlen($0), 0) }
      return ModelDirectoryLock(url: url, fd: fd)
    }
  }

  private init(url: URL, fd: Int32) { (self.url, self.fd) = (url, fd) }

  /// What the holder wrote in the lock file ("process N on host H").
  private static func holder(_ fd: Int32) -> String? {
    var buffer = [UInt8](repeating: 0, count: 300)
    let n = pread(fd, &buffer, buffer.count, 0)
    guard n > 0 else { return nil }
    let text = String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return text.isEmpty ? nil : text
  }

  /// Removes the lock file and lets the lock go (removing first, while it is still held, so that
  /// no other run takes a lock on a file about to go).
  public func release() {
    guard fd >= 0 else { return }
    unlink(url.path)
    close(fd)
    fd = -1
  }

  deinit { release() }
}
