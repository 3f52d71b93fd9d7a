import Foundation

/// Encodes a value into the objects `JSONSerialization` writes, keeping every optional property:
/// where the synthesized `Encodable` conformances skip a nil (`encodeIfPresent`), this writes null.
/// So a documented JSON document has every key of its type, and a new optional field cannot
/// silently drop out of it.
enum NullKeepingEncoder {
    /// `value` as dictionaries, arrays, strings, numbers, booleans and `NSNull`.
    static func object(_ value: some Encodable) throws -> Any {
        try box(value, codingPath: [])
    }

    /// A leaf value as it is, anything else through its own `encode(to:)`.
    fileprivate static func box<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> Any {
        switch value {
        case is String, is Bool, is any BinaryInteger, is any BinaryFloatingPoint:
            return value
        default:
            let node = Node()
            try value.encode(to: TreeEncoder(node: node, codingPath: codingPath))
            return node.resolved
        }
    }
}

/// One value of the tree being built; containers fill it in place.
private final class Node {
    enum Content {
        case leaf(Any)
        case object([String: Node])
        case array([Node])
    }

    var content: Content

    init(_ content: Content = .leaf(NSNull())) { self.content = content }

    /// The finished value, with every child node resolved.
    var resolved: Any {
        switch content {
        case let .leaf(value): return value
        case let .object(children): return children.mapValues(\.resolved)
        case let .array(elements): return elements.map(\.resolved)
        }
    }

    /// Makes this node an object (keeping its keys if it already is one).
    func becomeObject() {
        if case .object = content { return }
        content = .object([:])
    }

    /// Makes this node an array (keeping its elements if it already is one).
    func becomeArray() {
        if case .array = content { return }
        content = .array([])
    }

    /// Sets `key` of this object to a new node holding `child`, and returns that node.
    @discardableResult
    func set(_ key: String, _ child: Content) -> Node {
        let node = Node(child)
        if case var .object(children) = content {
            children[key] = node
            content = .object(children)
        }
        return node
    }

    /// Appends a new node holding `child` to this array, and returns that node.
    @discardableResult
    func append(_ child: Content) -> Node {
        let node = Node(child)
        if case var .array(elements) = content {
            elements.append(node)
            content = .array(elements)
        }
        return node
    }

    var count: Int {
        if case let .array(elements) = content { return elements.count }
        return 0
    }
}

private struct TreeEncoder: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.becomeArray()
        return UnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueContainer(node: node, codingPath: codingPath)
    }
}

/// The only container that differs from `JSONEncoder`'s: a nil optional becomes null. The
/// standard library gives every `encodeIfPresent` a default that skips nil, so each is written out.
private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.set(key.stringValue, .leaf(NSNull())) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.set(key.stringValue, .leaf(try NullKeepingEncoder.box(value, codingPath: codingPath + [key])))
    }

    /// Writes `value`, or null when it is nil.
    private mutating func encodeOrNull<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }

    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try encodeOrNull(value, forKey: key) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                        forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(KeyedContainer<NestedKey>(node: node.set(key.stringValue, .object([:])), codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        UnkeyedContainer(node: node.set(key.stringValue, .array([])), codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        TreeEncoder(node: node.set("super", .leaf(NSNull())), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        TreeEncoder(node: node.set(key.stringValue, .leaf(NSNull())), codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int { node.count }

    mutating func encodeNil() throws { node.append(.leaf(NSNull())) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.append(.leaf(try NullKeepingEncoder.box(value, codingPath: codingPath)))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(KeyedContainer<NestedKey>(node: node.append(.object([:])), codingPath: codingPath))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        UnkeyedContainer(node: node.append(.array([])), codingPath: codingPath)
    }

    mutating func superEncoder() -> any Encoder {
        TreeEncoder(node: node.append(.leaf(NSNull())), codingPath: codingPath)
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .leaf(NSNull()) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.content = .leaf(try NullKeepingEncoder.box(value, codingPath: codingPath))
    }
}
