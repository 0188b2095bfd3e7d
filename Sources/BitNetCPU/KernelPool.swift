import CBitNetKernels
import Foundation

/// The CPU backend's persistent threads (the C kernels' `bitnet_pool`): made once with the backend, woken for
/// each op, never created per op. The C ops split their work over it; the Swift paths left (the fake-quantized
/// float BitLinear of calibration) use ``run(_:grain:_:)``.
final class KernelPool: @unchecked Sendable {
    /// Owned; `bitnet_pool_run` serializes callers, so sharing the pointer between threads is safe.
    let pointer: OpaquePointer?
    let threads: Int

    init(threads: Int) {
        pointer = threads > 1 ? bitnet_pool_create(Int32(threads)) : nil
        self.threads = pointer == nil ? 1 : threads
    }

    deinit { bitnet_pool_destroy(pointer) }

    /// Calls `body` with chunks of `0..<count` (at most `grain` items each) on the pool's threads; returns when
    /// all are done. Chunks are disjoint: a body writes only its own chunk's outputs.
    func run(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        withoutActuallyEscaping(body) { body in
            var context = body
            withUnsafeMutablePointer(to: &context) { context in
                bitnet_pool_run(pointer, Int64(count), Int64(max(1, grain)), { context, begin, end, _ in
                    context!.assumingMemoryBound(to: ((Range<Int>) -> Void).self).pointee(Int(begin)..<Int(end))
                }, context)
            }
        }
    }

    /// Physical cores this process may use (hyper-threads counted once): the default thread count, since two
    /// threads of one core share its vector units.
    static var physicalCores: Int {
        let cores = Int(bitnet_physical_cores())
        return cores > 0 ? cores : ProcessInfo.processInfo.activeProcessorCount
    }
}
