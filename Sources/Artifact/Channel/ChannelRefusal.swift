/// Why the update channel, or a file in it, was refused. Every case names the file it is about
/// (`path`) and says what was wrong with it; `description` is the message a person reads.
public enum ChannelRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    // MARK: The index as bytes and JSON

    /// The index could not be read or is not well-formed JSON.
    case malformedIndex(path: String, reason: String)
    /// The index is larger than the hard cap, so it was not read to the end.
    case indexTooLarge(path: String, limit: Int)
    /// The index's `format` is not one this agent understands.
    case unsupportedFormat(path: String, format: Int)
    /// A field that must be present is missing (`field` is a JSON path such as `releases[2].level`).
    case missingField(path: String, field: String)
    /// A field has a JSON type other than the one the format requires.
    case wrongFieldType(path: String, field: String, expected: String)
    /// A field the format does not define (refused so that a misspelt field is never silently ignored).
    case unknownField(path: String, field: String)
    /// A field has the right type but a value the format forbids (bad hex, bad date, empty id, …).
    case invalidValue(path: String, field: String, reason: String)
    /// A release's `kind` (or a file's `type`) is not one this agent knows.
    case unknownKind(path: String, field: String, kind: String)

    // MARK: Signature and trust

    /// `index.json.sig` does not exist.
    case missingSignature(path: String)
    /// The signature file is malformed, or the signature does not match the index's bytes.
    case badSignature(path: String, reason: String)
    /// The index was signed by a key that is not in the trusted-keys directory.
    case untrustedKey(path: String, fingerprint: String)
    /// The trusted-keys directory holds no key.
    case noTrustedKeys(path: String)
    /// A file in the trusted-keys directory is not a key in the documented format.
    case malformedTrustedKey(path: String, reason: String)
    /// The trusted-keys directory, or a file in it, cannot be trusted as a file: not a regular
    /// file (FIFO, device, symbolic link, folder), too large, or changeable by a user other than root.
    case unsafeTrustedKey(path: String, reason: String)

    // MARK: Freshness

    /// The index's version is lower than the highest version accepted before (rollback).
    case rollback(path: String, version: Int, highestAccepted: Int)
    /// The index is at or past its `expires` time (freeze); there is no grace period.
    case expired(path: String, expires: String, now: String)

    // MARK: Releases as a whole

    /// Two releases share one id.
    case duplicateID(path: String, id: String)
    /// A hotpatch or fix names a baseline that the index does not define.
    case unknownBaseline(path: String, release: String, baseline: String)
    /// A hotpatch's level is not above the previous hotpatch level of the same baseline.
    case levelsNotIncreasing(path: String, release: String, baseline: String, level: Int, previous: Int)

    // MARK: Files the index refers to

    /// A file path in the index is absolute, has `..` or `.`, empty components or forbidden bytes.
    case unsafePath(path: String, entry: String, reason: String)
    /// A file path resolves, through a symbolic link, to somewhere outside the channel.
    case pathEscapesChannel(path: String, resolved: String)
    /// An installation destination is not an absolute, normalised path.
    case invalidDestination(path: String, destination: String, reason: String)
    /// A channel file is not a regular file.
    case notRegularFile(path: String)
    /// A channel file's SHA-256 differs from the index (altered, or swapped in from another index).
    case hashMismatch(path: String, expected: String, actual: String)
    /// A channel file is shorter than the index declares.
    case lengthMismatch(path: String, expected: UInt64, actual: UInt64)
    /// A channel file holds more bytes than the index declares (endless data); only `declared`+1 were read.
    case fileTooLarge(path: String, declared: UInt64)
    /// The index declares a file length above the policy's cap.
    case declaredLengthTooLarge(path: String, length: UInt64, limit: UInt64)
    /// A channel file could not be read (missing, permission, I/O error).
    case unreadableFile(path: String, reason: String)

    // MARK: The channel directory and the store

    /// The channel directory, or something inside it, can be written by a user other than root
    /// (or the verifying user); refused unless the policy allows it.
    case writableByOthers(path: String, reason: String)
    /// The verified copy could not be written to, or read back from, the agent's store.
    case storeFailure(path: String, reason: String)

    /// The file the refusal is about.
    public var path: String {
        switch self {
        case let .malformedIndex(path, _), let .indexTooLarge(path, _), let .unsupportedFormat(path, _),
             let .missingField(path, _), let .wrongFieldType(path, _, _), let .unknownField(path, _),
             let .invalidValue(path, _, _), let .unknownKind(path, _, _), let .missingSignature(path),
             let .badSignature(path, _), let .untrustedKey(path, _), let .noTrustedKeys(path),
             let .malformedTrustedKey(path, _), let .unsafeTrustedKey(path, _), let .rollback(path, _, _), let .expired(path, _, _),
             let .duplicateID(path, _), let .unknownBaseline(path, _, _),
             let .levelsNotIncreasing(path, _, _, _, _), let .unsafePath(path, _, _),
             let .pathEscapesChannel(path, _), let .invalidDestination(path, _, _), let .notRegularFile(path),
             let .hashMismatch(path, _, _), let .lengthMismatch(path, _, _), let .fileTooLarge(path, _),
             let .declaredLengthTooLarge(path, _, _), let .unreadableFile(path, _),
             let .writableByOthers(path, _), let .storeFailure(path, _):
            return path
        }
    }

    /// What was wrong, without the file name.
    public var reason: String {
        switch self {
        case let .malformedIndex(_, reason):
            return "malformed index: \(reason)"
        case let .indexTooLarge(_, limit):
            return "index is larger than the limit of \(limit) bytes"
        case let .unsupportedFormat(_, format):
            return "unsupported index format \(format) (this agent reads format 1)"
        case let .missingField(_, field):
            return "missing field \(field)"
        case let .wrongFieldType(_, field, expected):
            return "field \(field) must be \(expected)"
        case let .unknownField(_, field):
            return "unknown field \(field)"
        case let .invalidValue(_, field, reason):
            return "invalid \(field): \(reason)"
        case let .unknownKind(_, field, kind):
            return "unknown kind '\(kind)' in \(field)"
        case .missingSignature:
            return "signature file is missing (run 'hotpatch-pack publish')"
        case let .badSignature(_, reason):
            return "bad signature: \(reason)"
        case let .untrustedKey(_, fingerprint):
            return "signed by key \(fingerprint), which is not trusted"
        case .noTrustedKeys:
            return "no trusted key in the trusted-keys directory"
        case let .malformedTrustedKey(_, reason):
            return "malformed trusted key: \(reason)"
        case let .unsafeTrustedKey(_, reason):
            return "\(reason); trusted keys must be regular files in a folder, all owned by root (or the user running the check) and writable by no one else"
        case let .rollback(_, version, highest):
            return "index version \(version) is lower than version \(highest) accepted before (rollback)"
        case let .expired(_, expires, now):
            return "index expired at \(expires) (now \(now)); publish a fresh index"
        case let .duplicateID(_, id):
            return "release id '\(id)' is used more than once"
        case let .unknownBaseline(_, release, baseline):
            return "release '\(release)' names baseline '\(baseline)', which the index does not define"
        case let .levelsNotIncreasing(_, release, baseline, level, previous):
            return "hotpatch '\(release)' has level \(level) for baseline '\(baseline)', not above the previous level \(previous)"
        case let .unsafePath(_, entry, reason):
            return "file path '\(entry)' \(reason)"
        case let .pathEscapesChannel(_, resolved):
            return "resolves to \(resolved), outside the channel"
        case let .invalidDestination(_, destination, reason):
            return "destination '\(destination)' \(reason)"
        case .notRegularFile:
            return "not a regular file"
        case let .hashMismatch(_, expected, actual):
            return "SHA-256 is \(actual), the index says \(expected)"
        case let .lengthMismatch(_, expected, actual):
            return "length is \(actual) bytes, the index says \(expected)"
        case let .fileTooLarge(_, declared):
            return "holds more than the \(declared) bytes the index declares"
        case let .declaredLengthTooLarge(_, length, limit):
            return "declared length \(length) is above the limit of \(limit) bytes"
        case let .unreadableFile(_, reason):
            return "cannot be read: \(reason)"
        case let .writableByOthers(_, reason):
            return "\(reason); a channel must be writable only by root (or the user running the check)"
        case let .storeFailure(_, reason):
            return "store failure: \(reason)"
        }
    }

    /// A message naming the file and the reason.
    public var description: String {
        switch self {
        case .noTrustedKeys, .malformedTrustedKey, .unsafeTrustedKey: return "Refused trusted keys \(path): \(reason)"
        default: return "Refused channel file \(path): \(reason)"
        }
    }
}
