import CSodium
#if canImport(Glibc)
import Glibc
#endif

func sysconf_cores() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

@inline(__always)
func rawVerify(_ sig: [UInt8], _ msg: [UInt8], _ pk: [UInt8]) -> Bool {
    crypto_sign_verify_detached(sig, msg, UInt64(msg.count), pk) == 0
}
