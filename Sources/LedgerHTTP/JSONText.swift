import LedgerNode
import LedgerViews

/// Hand-built JSON for the hot paths (a receipt per submitted event, a batch of hex
/// events), where `JSONSerialization` with sorted keys cost more CPU than the node's
/// own work per event. Keys are written in sorted order, as `Render.json` would.
public enum JSONText {
    /// `value` as a JSON string literal, escaped per RFC 8259.
    public static func string(_ value: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in value.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [0x5C, 0x22]
            case UInt8(ascii: "\\"): out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0 ..< 0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `{"receipts":[{"code":…,"error":…,"height":…,"id":…,"sequence":…,"status":…},…]}`
    public static func receipts(_ rs: [Receipt]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + rs.count * 160)
        out += Array(#"{"receipts":["#.utf8)
        for (i, r) in rs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array(#"{"code":"#.utf8)
            if let c = r.code { string(c, into: &out) } else { out += Array("null".utf8) }
            out += Array(#","error":"#.utf8)
            if let e = r.error { string(e, into: &out) } else { out += Array("null".utf8) }
            out += Array(#","height":"#.utf8)
            out += Array((r.height.map { String($0.value) } ?? "null").utf8)
            out += Array(#","id":"#.utf8)
            if let id = r.id { string(id.hex, into: &out) } else { out += Array("null".utf8) }
            out += Array(#","sequence":"#.utf8)
            out += Array((r.sequence.map { String($0.value) } ?? "null").utf8)
            out += Array(#","status":"#.utf8)
            string(r.status.rawValue, into: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += Array("]}".utf8)
        return out
    }

    /// `{"events":["<hex>",…]}`: the body of a submission.
    public static func submission(_ events: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(14 + events.reduce(0) { $0 + 2 * $1.count + 3 })
        out += Array(#"{"events":["#.utf8)
        let digits = Array("0123456789abcdef".utf8)
        for (i, e) in events.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            for b in e { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
            out.append(UInt8(ascii: "\""))
        }
        out += Array("]}".utf8)
        return out
    }
}
