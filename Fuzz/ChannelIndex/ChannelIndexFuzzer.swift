import Artifact
// libFuzzer entry point for the channel index parser: strict JSON, typed fields, consistency
// checks, and the printer (whatever parses must print and parse back to the same index).

@_cdecl("LLVMFuzzerTestOneInput")
public func channelIndexFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let value = try? ChannelJSON.parse(bytes) {
        let printed = ChannelJSON.print(value)
        guard let again = try? ChannelJSON.parse(printed), again == value else {
            fatalError("JSON printed by ChannelJSON.print does not parse back to the same value")
        }
    }
    do {
        let index = try ChannelIndex.parse(bytes, path: "index.json")
        let reparsed = try ChannelIndex.parse(index.encoded(), path: "index.json")
        guard reparsed == index else { fatalError("an encoded index does not parse back to itself") }
        _ = RFC3339.format(index.expiresSeconds)
    } catch {
        _ = error.description
    }
    return 0
}
