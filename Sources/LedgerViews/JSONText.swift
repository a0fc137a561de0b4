import Foundation

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

    /// Any JSON view (`Render`'s dictionaries, arrays, strings, integers, booleans,
    /// `NSNull`) as JSON text, several times faster than `JSONSerialization`. Object keys
    /// are in byte order, not `Render.json`'s: for a reader that normalises key order
    /// (PostgreSQL's jsonb), not for the API's canonical text.
    public static func value(_ v: Any, into out: inout [UInt8]) {
        switch v {
        case let s as String: string(s, into: &out)
        case let b as Bool: out += b ? Array("true".utf8) : Array("false".utf8)
        case let i as Int: out += Array(String(i).utf8)
        case let i as UInt64: out += Array(String(i).utf8)
        case let i as Int64: out += Array(String(i).utf8)
        case let i as UInt32: out += Array(String(i).utf8)
        case let i as UInt16: out += Array(String(i).utf8)
        case let i as UInt8: out += Array(String(i).utf8)
        case let i as Int32: out += Array(String(i).utf8)
        case is NSNull: out += Array("null".utf8)
        case let d as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (n, k) in d.keys.sorted().enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                string(k, into: &out)
                out.append(UInt8(ascii: ":"))
                value(d[k]!, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (n, e) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                value(e, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        default:
            // Anything else (a Double, an NSNumber) as JSONSerialization writes it.
            let text = (try? JSONSerialization.data(withJSONObject: [v], options: [.withoutEscapingSlashes])).map(Array.init) ?? Array("[null]".utf8)
            out += text.dropFirst().dropLast()
        }
    }
}
