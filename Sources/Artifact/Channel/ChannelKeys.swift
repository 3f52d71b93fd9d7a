import Crypto
import Foundation

/// An Ed25519 public key the agent trusts, read from one file of the trusted-keys directory.
///
/// File format (also written by `hotpatch-pack keygen --public-key`): one line
/// `ed25519 <base64 of the 32-byte public key> [comment]`; blank lines and lines starting with
/// `#` are ignored; exactly one key per file.
public struct TrustedKey: Equatable, Sendable {
    /// The 32 raw bytes of the public key.
    public let rawRepresentation: [UInt8]
    /// The free-text comment after the key, if any.
    public let comment: String

    /// Wraps raw key bytes.
    public init(rawRepresentation: [UInt8], comment: String = "") {
        self.rawRepresentation = rawRepresentation
        self.comment = comment
    }

    /// Lowercase hex SHA-256 of the raw key: how messages and `VerifiedChannel` name a key.
    public var fingerprint: String { ChannelKeys.fingerprint(rawRepresentation) }

    /// Parses a key file's text; `path` names it in the refusal.
    public static func parse(_ text: String, path: String) throws(ChannelRefusal) -> TrustedKey {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1 else {
            throw .malformedTrustedKey(path: path, reason: lines.isEmpty ? "no key line" : "more than one key line")
        }
        let words = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard words.count >= 2, words[0] == "ed25519" else {
            throw .malformedTrustedKey(path: path, reason: "expected 'ed25519 <base64 public key> [comment]'")
        }
        guard let raw = Data(base64Encoded: String(words[1])), raw.count == 32 else {
            throw .malformedTrustedKey(path: path, reason: "the key is not the base64 of 32 bytes")
        }
        return TrustedKey(rawRepresentation: Array(raw), comment: words.count > 2 ? String(words[2]) : "")
    }

    /// The key file's text: `ed25519 <base64> [comment]` and a newline.
    public var fileText: String {
        "ed25519 \(Data(rawRepresentation).base64EncodedString())\(comment.isEmpty ? "" : " " + comment)\n"
    }

    /// True if `signature` is this key's Ed25519 signature over `message`.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// The signature file `index.json.sig`: one line `ed25519 <base64 public key> <base64 signature>`.
/// The key is named so that a refusal can tell "signed by an untrusted key" from "bad signature";
/// it is only a hint: the signature is checked against the trusted key with those bytes.
public struct IndexSignature: Equatable, Sendable {
    public let publicKey: [UInt8]
    public let signature: [UInt8]

    public init(publicKey: [UInt8], signature: [UInt8]) {
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Parses the signature file's text; `path` names it in the refusal.
    public static func parse(_ text: String, path: String) throws(ChannelRefusal) -> IndexSignature {
        let words = text.split(whereSeparator: { $0 == " " || $0.isNewline })
        guard words.count == 3, words[0] == "ed25519" else {
            throw .badSignature(path: path, reason: "expected one line 'ed25519 <base64 public key> <base64 signature>'")
        }
        guard let key = Data(base64Encoded: String(words[1])), key.count == 32 else {
            throw .badSignature(path: path, reason: "the public key is not the base64 of 32 bytes")
        }
        guard let signature = Data(base64Encoded: String(words[2])), signature.count == 64 else {
            throw .badSignature(path: path, reason: "the signature is not the base64 of 64 bytes")
        }
        return IndexSignature(publicKey: Array(key), signature: Array(signature))
    }

    /// The signature file's text.
    public var fileText: String {
        "ed25519 \(Data(publicKey).base64EncodedString()) \(Data(signature).base64EncodedString())\n"
    }
}

/// A publisher's Ed25519 private key (used by `hotpatch-pack`; the agent never holds one).
///
/// File format: one line `ed25519-private <base64 of the 32-byte private key>`, mode 0600.
public struct ChannelSigningKey {
    private let key: Curve25519.Signing.PrivateKey

    /// A new random key.
    public static func generate() -> ChannelSigningKey { ChannelSigningKey(key: .init()) }

    private init(key: Curve25519.Signing.PrivateKey) { self.key = key }

    /// Parses a private key file's text; nil if it is not one line `ed25519-private <base64 of 32 bytes>`.
    public init?(fileText text: String) {
        let words = text.split(whereSeparator: { $0 == " " || $0.isNewline })
        guard words.count == 2, words[0] == "ed25519-private",
              let raw = Data(base64Encoded: String(words[1])), raw.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { return nil }
        self.key = key
    }

    /// The private key file's text.
    public var fileText: String { "ed25519-private \(key.rawRepresentation.base64EncodedString())\n" }

    /// The matching public key.
    public func publicKey(comment: String = "") -> TrustedKey {
        TrustedKey(rawRepresentation: Array(key.publicKey.rawRepresentation), comment: comment)
    }

    /// Signs `index` (the exact bytes of `index.json`).
    public func sign(_ index: [UInt8]) throws -> IndexSignature {
        IndexSignature(publicKey: Array(key.publicKey.rawRepresentation), signature: Array(try key.signature(for: index)))
    }
}

/// Hashing helpers shared by the verifier and `hotpatch-pack`.
public enum ChannelKeys {
    /// Lowercase hex SHA-256 of a raw public key.
    public static func fingerprint(_ raw: [UInt8]) -> String { Hex.encode(SHA256.hash(data: raw)) }

    /// Lowercase hex SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(data: bytes)) }
}
