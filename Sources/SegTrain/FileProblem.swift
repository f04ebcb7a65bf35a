import Foundation

// MARK: - Why a path cannot be used

/// Words for a file-system failure, in place of Foundation's "NSCocoaErrorDomain error 512": the
/// path's own state is looked at first (a folder where a file is expected, a file where a folder
/// is, a path below a file, a folder without write permission), then the system's reason.
public enum FileProblem {
  /// Why `path` could not be read, written or created, after `error` from Foundation.
  /// `expectingFolder` says whether `path` itself should be a folder; `writing`, whether it was
  /// to be written (else read).
  public static func describe(_ error: any Error, path: String, expectingFolder: Bool = false, writing: Bool = true) -> String {
    if let problem = pathProblem(path, expectingFolder: expectingFolder, writing: writing) { return problem }
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
      return String(cString: strerror(Int32(underlying.code)))
    }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    switch CocoaError.Code(rawValue: ns.code) {
    case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
    case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
    case .fileWriteOutOfSpace: return "no space left on the device"
    case .fileWriteVolumeReadOnly: return "the file system is read-only"
    default: return ns.domain == NSCocoaErrorDomain ? "the file system refused (code \(ns.code))" : "\(error)"
    }
  }

  /// What is wrong with `path` as it stands, when something visibly is; nil otherwise.
  public static func pathProblem(_ path: String, expectingFolder: Bool, writing: Bool = true) -> String? {
    let fm = FileManager.default
    var isFolder: ObjCBool = false
    if fm.fileExists(atPath: path, isDirectory: &isFolder) {
      if isFolder.boolValue != expectingFolder {
        return isFolder.boolValue ? "is a folder, not a file" : "is a file, not a folder"
      }
      if writing, !fm.isWritableFile(atPath: path) { return "permission denied (not writable)" }
      if !writing, !fm.isReadableFile(atPath: path) { return "permission denied (not readable)" }
      return nil
    }
    if !writing { return "no such file" }
    // The nearest part of the path that exists decides: a file there means a path below a file.
    var parent = URL(fileURLWithPath: path).deletingLastPathComponent()
    while parent.path != "/" && !fm.fileExists(atPath: parent.path, isDirectory: &isFolder) {
      parent = parent.deletingLastPathComponent()
    }
    guard fm.fileExists(atPath: parent.path, isDirectory: &isFolder) else { return nil }
    if !isFolder.boolValue { return "\(parent.path) is a file, so nothing can be created below it" }
    if !fm.isWritableFile(atPath: parent.path) { return "permission denied: \(parent.path) is not writable" }
    return nil
  }
}
