import CCUDA
import Foundation

// MARK: - Making a context current once per thread

/// Which CUDA context this process last made current on each thread, so that a launch on a thread
/// where its context is already current makes no driver call. Every place that sets a context goes
/// through `make(_:api:)`, so the record stays true; nothing in the process pushes or pops contexts.
enum CurrentContext {
  private static let key: pthread_key_t = {
    var k = pthread_key_t()
    precondition(pthread_key_create(&k, nil) == 0, "pthread_key_create failed")
    return k
  }()

  /// Makes `context` current on the calling thread unless this thread's last one was it.
  static func make(_ context: ccuda_CUcontext, api: DriverAPI) throws {
    let address = UnsafeMutableRawPointer(context)
    if pthread_getspecific(key) == address { return }
    try api.check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    pthread_setspecific(key, address)
  }
}
