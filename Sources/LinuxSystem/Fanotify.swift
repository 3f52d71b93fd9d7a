import Glibc

/// fanotify(7), notification class only: which process opened one of the files marked.
///
/// Glibc's Swift module does not import `<sys/fanotify.h>`: the two calls are found by dlsym in the
/// already loaded libc (as `gettid` and `accept4` are), the constants are the kernel's ABI values
/// from `<linux/fanotify.h>`, and event records are read at fixed offsets, so no C shim is needed.
/// Creating an instance needs `CAP_SYS_ADMIN`; without it the kernel says EPERM.
package enum Fanotify {
    /// What happened to a marked file, as the `mask` of a mark and of an event.
    package struct Events: OptionSet, Sendable, Hashable {
        package let rawValue: UInt64
        package init(rawValue: UInt64) { self.rawValue = rawValue }

        /// The file was opened (FAN_OPEN).
        package static let open = Events(rawValue: 0x20)
        /// The kernel's queue was full and events were lost (FAN_Q_OVERFLOW); never marked.
        package static let overflow = Events(rawValue: 0x4000)
        /// The file is being opened, and the opener waits for a permission instance's answer
        /// (FAN_OPEN_PERM).
        package static let openPermission = Events(rawValue: 0x10000)
        /// The file is being opened for execve (or uselib), and the opener waits for the answer
        /// (FAN_OPEN_EXEC_PERM, Linux 5.0); reported as its own event, before `openPermission`.
        package static let openExecPermission = Events(rawValue: 0x40000)
    }

    /// One permission event: the opener waits in the kernel until `answer` is called with
    /// `descriptor` (an open descriptor of the file, for the reader to close after answering).
    package struct PermissionRequest: Sendable, Equatable {
        /// The events asked about (`openPermission`, `openExecPermission`).
        package var events: Events
        /// The opening thread (FAN_REPORT_TID); nil when the kernel could not name it here.
        package var thread: ProcessID?
        /// The descriptor that names the event in the answer.
        package var descriptor: Int32
    }

    /// One event: what happened, and to whom it happened first.
    package struct Event: Sendable, Equatable {
        /// The events this record reports (the kernel merges repeats on the same file).
        package var events: Events
        /// The process that opened the file; nil for a queue overflow, or when the kernel
        /// could not name it in our PID namespace.
        package var pid: ProcessID?

        /// An event of `events` caused by `pid`.
        package init(events: Events, pid: ProcessID?) {
            self.events = events
            self.pid = pid
        }
    }

    /// How the instance is named in errors.
    package static let subject = "a fanotify instance"

    /// How an instance names the file of an event.
    package enum Reporting: Sendable {
        /// An open descriptor per record (the reader closes it): works on every filesystem, but
        /// the kernel opens a file in the reader's context for every record it reads.
        case descriptors
        /// A file handle in the record, no descriptor (FAN_REPORT_FID, Linux 5.1): far cheaper to
        /// read; marking a file on a filesystem that cannot encode handles fails (EOPNOTSUPP,
        /// EXDEV or ENODEV), and `fileIDsUnsupported` says so.
        case fileIDs
    }

    /// A new notification-only instance, close-on-exec and non-blocking, reporting as `reporting`
    /// says; event descriptors (when reported) are opened read-only and close-on-exec (64-bit
    /// kernels add O_LARGEFILE themselves).
    /// fanotify_init(2) with FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK [| FAN_REPORT_FID].
    package static func create(reporting: Reporting = .descriptors) throws(SystemError) -> Int32 {
        guard let initialise = initFunction else { throw SystemError(call: "fanotify_init", errno: ENOSYS, subject: subject) }
        let flags = classNotif | cloexec | nonblock | (reporting == .fileIDs ? reportFID : 0)
        return try SystemCall.run("fanotify_init", subject) { initialise(flags, UInt32(O_RDONLY | O_CLOEXEC)) }
    }

    /// A new permission-class instance (FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK |
    /// FAN_REPORT_TID): every open of a file it marks for `openPermission` or `openExecPermission`
    /// waits until the reader answers, and records name the opening thread. Each record carries a
    /// descriptor (a permission instance cannot report file handles). When the instance is closed
    /// (its reader's process died) the kernel allows every pending and later open.
    package static func createPermissionInstance() throws(SystemError) -> Int32 {
        guard let initialise = initFunction else { throw SystemError(call: "fanotify_init", errno: ENOSYS, subject: subject) }
        let flags = classContent | cloexec | nonblock | reportTID
        return try SystemCall.run("fanotify_init", subject) { initialise(flags, UInt32(O_RDONLY | O_CLOEXEC)) }
    }

    /// Reads every permission event pending on `fd` (a permission instance) into `buffer`; nil
    /// when none is pending. Every request must be answered, then its descriptor closed.
    package static func readPermissionRequests(_ fd: Int32, into buffer: inout [UInt8]) throws(SystemError) -> [PermissionRequest]? {
        var requests: [PermissionRequest]?
        while let count = try Descriptor.read(fd, into: &buffer, subject: subject), count > 0 {
            let parsed: [(event: Event, descriptor: Int32)] = buffer.withUnsafeBytes { Fanotify.records(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            requests = (requests ?? []) + parsed.map { PermissionRequest(events: $0.event.events, thread: $0.event.pid, descriptor: $0.descriptor) }
        }
        return requests
    }

    /// Answers the permission event named by `descriptor`: the opener goes on (allowed) or its
    /// open fails with EPERM. write(2) of a struct fanotify_response { s32 fd; u32 response; }.
    package static func answer(_ fd: Int32, descriptor: Int32, allow: Bool) throws(SystemError) {
        var response = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: descriptor.littleEndian) { response.replaceSubrange(0..<4, with: $0) }
        withUnsafeBytes(of: (allow ? allowResponse : denyResponse).littleEndian) { response.replaceSubrange(4..<8, with: $0) }
        try Descriptor.writeAll(fd, response, subject: subject)
    }

    /// Whether `error`, from marking a file on a `.fileIDs` instance, means the file's filesystem
    /// cannot report file handles (a `.descriptors` instance can still watch it).
    package static func fileIDsUnsupported(_ error: SystemError) -> Bool {
        error.errno == EOPNOTSUPP || error.errno == EXDEV || error.errno == ENODEV
    }

    /// Marks the file at `path` itself (its inode, found through symbolic links, `/proc/PID/map_files`
    /// entries included), not its mount, for `events`; marking a file again adds to its mask.
    /// fanotify_mark(2) with FAN_MARK_ADD.
    package static func mark(_ fd: Int32, path: String, events: Events) throws(SystemError) {
        guard let mark = markFunction else { throw SystemError(call: "fanotify_mark", errno: ENOSYS, subject: path) }
        try SystemCall.run("fanotify_mark", path) { mark(fd, markAdd, events.rawValue, AT_FDCWD, path) }
    }

    /// Removes every file mark of the instance at once. fanotify_mark(2) with FAN_MARK_FLUSH.
    package static func removeAllMarks(_ fd: Int32) throws(SystemError) {
        guard let mark = markFunction else { throw SystemError(call: "fanotify_mark", errno: ENOSYS, subject: subject) }
        try SystemCall.run("fanotify_mark", subject) { mark(fd, markFlush, 0, AT_FDCWD, "/") }
    }

    /// Reads every event pending on `fd` into `buffer` (as many reads as it takes), closing the
    /// descriptor the kernel opened for each; nil when none is pending. read(2).
    package static func readEvents(_ fd: Int32, into buffer: inout [UInt8]) throws(SystemError) -> [Event]? {
        var events: [Event]?
        while let count = try Descriptor.read(fd, into: &buffer, subject: subject), count > 0 {
            let records = buffer.withUnsafeBytes { parse(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            records.descriptors.forEach(Descriptor.close)
            events = (events ?? []) + records.events
        }
        return events
    }

    /// Decodes the event records in `bytes`, and the descriptors they carry (the caller closes them).
    /// A `.fileIDs` record carries no descriptor (-1, FAN_NOFD) and info records after its fixed
    /// part, which `event_len` covers and this parser skips.
    ///
    ///     struct fanotify_event_metadata (24 bytes): u32 event_len @0, u8 vers @4, u8 reserved @5,
    ///         u16 metadata_len @6, u64 mask @8, s32 fd @16, s32 pid @20
    ///
    /// A record of another version, or a malformed tail, ends the parse with an overflow event:
    /// what it held is unknown, so the caller must look at every process again.
    package static func parse(_ bytes: UnsafeRawBufferPointer) -> (events: [Event], descriptors: [Int32]) {
        let parsed = records(bytes)
        return (parsed.map(\.event), parsed.map(\.descriptor).filter { $0 >= 0 })
    }

    /// `parse`, each event with the descriptor its record carries (-1 for none).
    package static func records(_ bytes: UnsafeRawBufferPointer) -> [(event: Event, descriptor: Int32)] {
        var events: [(event: Event, descriptor: Int32)] = []
        var offset = 0
        while offset < bytes.count {
            guard offset + metadataSize <= bytes.count else {
                events.append((Event(events: .overflow, pid: nil), -1))
                break
            }
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let version = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt8.self)
            guard version == metadataVersion, length >= metadataSize, offset + length <= bytes.count else {
                events.append((Event(events: .overflow, pid: nil), -1))
                break
            }
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
            let descriptor = bytes.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self)
            let pid = bytes.loadUnaligned(fromByteOffset: offset + 20, as: Int32.self)
            events.append((Event(events: Events(rawValue: mask), pid: pid > 0 ? ProcessID(pid) : nil), descriptor))
            offset += length
        }
        return events
    }

    /// The size of one record's fixed part, and the layout version this parser reads.
    package static let metadataSize = 24
    package static let metadataVersion: UInt8 = 3  // FANOTIFY_METADATA_VERSION

    private static let classNotif: UInt32 = 0x0  // FAN_CLASS_NOTIF
    private static let cloexec: UInt32 = 0x1  // FAN_CLOEXEC
    private static let nonblock: UInt32 = 0x2  // FAN_NONBLOCK
    private static let reportFID: UInt32 = 0x200  // FAN_REPORT_FID
    private static let classContent: UInt32 = 0x4  // FAN_CLASS_CONTENT
    private static let reportTID: UInt32 = 0x100  // FAN_REPORT_TID
    private static let allowResponse: UInt32 = 0x1  // FAN_ALLOW
    private static let denyResponse: UInt32 = 0x2  // FAN_DENY
    private static let markAdd: UInt32 = 0x1  // FAN_MARK_ADD
    private static let markFlush: UInt32 = 0x80  // FAN_MARK_FLUSH (without FAN_MARK_MOUNT: file marks)

    private typealias Init = @convention(c) (UInt32, UInt32) -> Int32
    private typealias Mark = @convention(c) (Int32, UInt32, UInt64, Int32, UnsafePointer<CChar>?) -> Int32
    /// Looked up once; nil in a libc without them (the calls then fail with ENOSYS).
    private static let initFunction: Init? = dlsym(nil, "fanotify_init").map { unsafeBitCast($0, to: Init.self) }
    private static let markFunction: Mark? = dlsym(nil, "fanotify_mark").map { unsafeBitCast($0, to: Mark.self) }
}
