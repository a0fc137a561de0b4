import Foundation
import LedgerCore
import LedgerStore

/// The outcome of a write made on another thread.
final class WriteResult: @unchecked Sendable {
    private let lock = NSLock()
    private var error: StoreError?
    func set(_ e: StoreError) { lock.withLock { error = e } }
    func get() -> StoreError? { lock.withLock { error } }
}
