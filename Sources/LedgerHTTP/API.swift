import Hummingbird
import LedgerNode

// The HTTP API (issue 4): see API.swift once built.
