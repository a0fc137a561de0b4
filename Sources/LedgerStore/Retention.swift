import LedgerCore

/// How much of the past a log keeps as state (checkpoints), and which heights it still
/// serves state at. Checkpoints are disposable (every one is a refold of the log), so
/// keeping them all only makes the disk grow with the history times the state:
///
/// - Heights from `head − window` up are served: the state at h is the newest kept
///   checkpoint at or below h, refolded forward, at most `spacing` blocks.
/// - Inside the window a checkpoint is kept every `spacing` blocks (a multiple of the
///   checkpoint interval K, about window / 8), plus the newest one, so a node keeps
///   about ten snapshots however long its history.
/// - Below the window a state read is refused (`height_pruned`); the log itself, and
///   everything proven from it (blocks, events, event paths, power changes), is kept.
///
/// A window of 0 keeps every checkpoint and serves every height (an archive node).
public struct StateRetention: Sendable, Equatable, CustomStringConvertible {
    /// Blocks below the head whose state stays readable (0: all of them).
    public var window: UInt64

    public static let defaultWindow: UInt64 = 10_000
    public static let archive = StateRetention(window: 0)

    public init(window: UInt64 = Self.defaultWindow) { self.window = window }

    public var description: String { window == 0 ? "archive (every height)" : "the last \(window) blocks" }

    /// Blocks between two kept checkpoints inside the window.
    public func spacing(interval k: UInt64) -> UInt64 {
        let k = max(k, 1)
        return window == 0 ? k : max(k, window / 8 / k * k)
    }

    /// The lowest height whose state is served when the log's head is `head`.
    public func oldest(head: Height) -> Height {
        window == 0 || head.value <= window ? Height(0) : Height(head.value - window)
    }

    /// Whether the checkpoint at `h` is kept at head `head` (checkpoint interval `k`).
    public func keeps(_ h: Height, head: Height, interval k: UInt64) -> Bool {
        if window == 0 || h.value + max(k, 1) > head.value { return true }  // archive, or the newest
        let s = spacing(interval: k)
        // The first kept one is at or below the oldest served height, so every served
        // height has a kept checkpoint at most `s` blocks below it.
        let floor = oldest(head: head).value / s * s
        return h.value % s == 0 && h.value >= floor
    }
}
