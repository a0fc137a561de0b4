import Foundation
import LedgerCore
import LedgerStore
import LedgerProjections

/// The outcome of a write made on another thread.
final class WriteResult: @unchecked Sendable {
    private let lock = NSLock()
    private var error: StoreError?
    func set(_ e: StoreError) { lock.withLock { error = e } }
    func get() -> StoreError? { lock.withLock { error } }
}

/// The state admission tries events on: the head at `height` (root `root`) with the
/// next block begun under `context`, built at `builtAtMs`.
struct ProbeBase: Sendable {
    let height: Height
    let root: Hash32
    let builtAtMs: UInt64
    let state: LedgerState
    let context: BlockContext
}
