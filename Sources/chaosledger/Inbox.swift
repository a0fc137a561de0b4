import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto

/// `chaosledger inbox`: the messages sent to an agent (`message.send`, rule version 3),
/// read from its agent stream on a node and opened with its key file.
struct InboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbox",
        abstract: "Read and decrypt the messages sent to an agent.",
        discussion: """
        Reads the agent's stream (GET /v1/streams/agent/{key}) page by page, keeps the
        message.send events addressed to it and opens each sealed box with the key file.
        A box that does not open (altered, or sealed to another key) is listed as such.
        Send with `chaosledger submit --key FILE message.send --to KEY --text TEXT`.
        """)
    @Option(help: "Node HTTP address.") var node = "http://127.0.0.1:8100"
    @Option(help: "The recipient agent's key file.") var key: String
    @Option(help: "Only events after this stream sequence number.") var after: UInt64?
    @Flag(help: "Print the messages as JSON.") var json = false

    struct Message: Encodable {
        var sequence: UInt64
        var id: String
        var from: String
        /// The text, or nil when the box does not open with this key.
        var text: String?
        var error: String?
    }

    func run() async throws {
        let me = try KeyFile.read(from: key)
        let messages = try await Self.messages(for: me, node: node, after: after)
        if json { printEncodable(messages); return }
        if messages.isEmpty { print("no messages for \(me.publicKey.hex)") }
        for m in messages {
            print("#\(m.sequence) from \(m.from) (event \(m.id)): " + (m.text.map { "\"\($0)\"" } ?? "cannot open: \(m.error ?? "")"))
        }
    }

    /// The messages sent to `me` on the node, after the stream sequence `after`, each
    /// opened with `me`'s key (or with the reason it does not open).
    static func messages(for me: SigningKey, node: String, after: UInt64?) async throws -> [Message] {
        let client = NodeClient(node)
        var cursor = after, messages: [Message] = []
        while true {
            let page = try await client.getJSON("/v1/streams/agent/\(me.publicKey.hex)?limit=500" + (cursor.map { "&after=\($0)" } ?? ""))
            let events = page["events"] as? [[String: Any]] ?? []
            for e in events where e["kind"] as? String == "message.send" {
                guard let p = e["payload"] as? [String: Any], p["to"] as? String == me.publicKey.hex,
                      let box = (p["sealed"] as? String).flatMap(Hex.decode) else { continue }
                var m = Message(sequence: (e["sequence"] as? NSNumber)?.uint64Value ?? 0, id: e["id"] as? String ?? "",
                                from: e["author"] as? String ?? "")
                do {
                    let plain = try SealedBox.open(box, with: me)
                    m.text = String(bytes: plain, encoding: .utf8) ?? "hex:" + Hex.encode(plain)
                } catch {
                    m.error = error.description
                }
                messages.append(m)
            }
            guard let next = (page["next"] as? NSNumber)?.uint64Value, !events.isEmpty else { break }
            cursor = next
        }
        return messages
    }
}
