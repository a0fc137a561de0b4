import LedgerNode
import NIOCore
import NIOPosix

// The TCP mesh (issue 4): see Mesh.swift once built.
