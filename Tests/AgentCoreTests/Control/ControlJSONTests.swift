import AgentProtocol
import Foundation
import Testing

/// The `--json` documents of `agentctl status|processes|history`: every optional field is a key with
/// null when unset (docs/STATUS.md promises "never missing"), found from the types themselves by
/// reflection, so a field added tomorrow is checked without touching this file.
@Suite struct ControlJSONTests {
    /// A status with every optional unset, and one whose optional sections are there with their
    /// own optionals unset (reflection cannot look inside a nil section).
    static let unsetStatuses: [AgentStatus] = {
        let unset = AgentStatus(verdict: .exposed, reasons: [.init(verdict: .exposed, message: "pid 7 is unpatchable")],
                                baseline: .init(active: nil), hotpatch: nil,
                                processes: .init(), reboot: .init(), channel: .init(), enrolled: true,
                                processWatch: "scan", lastPauseUsec: nil, agentVersion: "0.1.0")
        var sectionsPresent = unset
        sectionsPresent.hotpatch = .init(id: "hp1", level: 1, cves: [])
        sectionsPresent.kernel = .init(release: "6.1.0-21-amd64", buildId: nil, state: .none)
        sectionsPresent.execGate = .init(mode: "off", reason: nil, patched: 0, letGo: 0, notHeld: 0)
        sectionsPresent.fixedPackages = [.init(hotpatch: "hp1", state: .pending, installedAt: nil, reason: nil, packages: [
            .init(name: "libfoo1", architecture: "amd64", version: "1.2-2", action: "installed", previousVersion: nil),
        ])]
        return [unset, sectionsPresent]
    }()

    @Test func statusJSON_everyOptionalFieldUnset_isAKeyWithNull() throws {
        var checked: Set<String> = []
        for status in Self.unsetStatuses {
            let document = try JSONSerialization.jsonObject(with: ControlJSON.document(status))
            checked.formUnion(expectNullForEveryUnsetOptional(of: status, in: document))
        }

        // Today's optional fields, so the walk itself is known to find them.
        #expect(checked.isSuperset(of: ["baseline.active", "hotpatch", "hotpatch.description", "channel.version",
                                        "channel.lastCheck", "channel.error", "lastPauseUsec", "kernel", "kernel.buildId",
                                        "kernel.hotpatch", "kernel.level", "kernel.livepatch", "kernel.transitionSeconds",
                                        "kernel.reason", "fixedPackages[].installedAt", "fixedPackages[].reason",
                                        "fixedPackages[].packages[].previousVersion"]), "\(checked.sorted())")
        #expect(checked == (try nullableFields(documentedIn: "## `agentctl status --json`")),
                "docs/STATUS.md's \"or null\" fields differ from the optional fields of AgentStatus")
    }

    @Test func processesJSON_everyOptionalFieldUnset_isAKeyWithNull() throws {
        let processes = [ProcessEntry(pid: 1, executable: "/usr/sbin/nginx", state: .unpatched,
                                      objects: [.init(path: "/usr/lib/libssl.so.3")])]
        let document = try JSONSerialization.jsonObject(with: ControlJSON.document(processes))

        let checked = expectNullForEveryUnsetOptional(of: processes, in: document)

        #expect(checked == ["[].reason", "[].pauseUsec", "[].hotpatch", "[].objects[].buildId", "[].objects[].hotpatch",
                            "[].objects[].level", "[].objects[].reason", "[].unit"], "\(checked.sorted())")
        #expect(Set(checked.map { String($0.dropFirst(3)) }) == (try nullableFields(documentedIn: "## `agentctl processes --json`")))
    }

    @Test func historyJSON_everyOptionalFieldUnset_isAKeyWithNull() throws {
        let history = [HistoryEntry(time: "2026-12-01T10:00:00Z", event: "enrolled", message: "enrolled")]
        let document = try JSONSerialization.jsonObject(with: ControlJSON.document(history))

        let checked = expectNullForEveryUnsetOptional(of: history, in: document)

        #expect(checked == ["[].release"], "\(checked.sorted())")
        #expect(Set(checked.map { String($0.dropFirst(3)) }) == (try nullableFields(documentedIn: "## `agentctl history --json`")))
    }

    @Test func statusJSON_keepsItsDocumentedBytes() throws {
        var status = AgentStatus.sample(verdict: .rebootRequired)
        status.baseline.pending = ["deb12-2024.06"]
        status.hotpatch?.objects = [.init(buildId: "3f0c", path: "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", hotpatch: "openssl-2024-04",
                                          level: 1)]
        status.kernel = .init(release: "6.1.0-21-amd64", buildId: "a1b2", state: .inTransition, hotpatch: "openssl-2024-05", level: 2,
                              livepatch: "livepatch_cve_2024_0003", transitionSeconds: 12.5,
                              blocking: [.init(pid: 812, tid: 815, comm: "kworker/0:1")])

        let text = String(decoding: try ControlJSON.document(status), as: UTF8.self)

        #expect(text == """
            {
              "agentVersion" : "0.1.0",
              "baseline" : {
                "active" : "deb12-2024.05",
                "pending" : [
                  "deb12-2024.06"
                ]
              },
              "channel" : {
                "error" : null,
                "lastCheck" : "2024-05-01T10:00:00Z",
                "path" : "/srv/channel",
                "version" : 7
              },
              "enrolled" : true,
              "execGate" : null,
              "fixedPackages" : [

              ],
              "hotpatch" : {
                "cves" : [
                  "CVE-2024-0001",
                  "CVE-2024-0002"
                ],
                "description" : null,
                "id" : "openssl-2024-05",
                "level" : 2,
                "objects" : [
                  {
                    "buildId" : "3f0c",
                    "hotpatch" : "openssl-2024-04",
                    "level" : 1,
                    "path" : "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
                  }
                ]
              },
              "kernel" : {
                "blocking" : [
                  {
                    "comm" : "kworker/0:1",
                    "pid" : 812,
                    "tid" : 815
                  }
                ],
                "buildId" : "a1b2",
                "hotpatch" : "openssl-2024-05",
                "level" : 2,
                "livepatch" : "livepatch_cve_2024_0003",
                "reason" : null,
                "release" : "6.1.0-21-amd64",
                "state" : "in-transition",
                "transitionSeconds" : 12.5
              },
              "lastPauseUsec" : 420,
              "mappingWatch" : "fanotify",
              "processes" : {
                "patched" : 3,
                "pending" : 1,
                "unpatchable" : 0,
                "vulnerable" : 0
              },
              "processWatch" : "netlink",
              "reasons" : [
                {
                  "message" : "sample reason for reboot-required",
                  "verdict" : "reboot-required"
                }
              ],
              "reboot" : {
                "policy" : "request",
                "reasons" : [
                  "baseline deb12-2024.06 installed"
                ],
                "required" : true
              },
              "verdict" : "reboot-required"
            }
            """)
    }

    /// Walks `value` by reflection beside its JSON `document`: every optional that is nil must be a
    /// key holding null. Returns the dotted paths of the optionals met (arrays as `name[]`).
    /// Property names are the JSON keys: these types use the synthesized coding keys.
    private func expectNullForEveryUnsetOptional(of value: Any, in document: Any, path: String = "") -> Set<String> {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .collection {
            let elements = document as? [Any] ?? []
            #expect(elements.count == mirror.children.count, "\(path) is not the same array in JSON")
            return zip(mirror.children, elements).reduce(into: []) { found, pair in
                found.formUnion(expectNullForEveryUnsetOptional(of: pair.0.value, in: pair.1, path: path + "[]"))
            }
        }
        guard mirror.displayStyle == .struct else { return [] }
        guard let object = document as? [String: Any] else {
            Issue.record("\(path.isEmpty ? "the document" : path) is not an object in the JSON")
            return []
        }
        var found: Set<String> = []
        for case let (label?, child) in mirror.children {
            let childPath = path.isEmpty ? label : path + "." + label
            let childMirror = Mirror(reflecting: child)
            guard childMirror.displayStyle == .optional else {
                found.formUnion(expectNullForEveryUnsetOptional(of: child, in: object[label] as Any, path: childPath))
                continue
            }
            found.insert(childPath)
            if let wrapped = childMirror.children.first?.value {
                found.formUnion(expectNullForEveryUnsetOptional(of: wrapped, in: object[label] as Any, path: childPath))
            } else {
                #expect(object[label] is NSNull, "\(childPath) is unset but \(object[label].map { "\($0)" } ?? "missing") in the JSON")
            }
        }
        return found
    }

    /// The fields docs/STATUS.md's table under `heading` types as "… or null".
    private func nullableFields(documentedIn heading: String) throws -> Set<String> {
        let text = try repositoryFile("docs/STATUS.md")
        let start = try #require(text.range(of: heading), "no \(heading) in docs/STATUS.md")
        let section = text[start.upperBound...].components(separatedBy: "\n## ").first ?? ""
        return Set(section.split(separator: "\n").compactMap { row -> String? in
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, cells[1].hasSuffix("or null"), cells[0].hasPrefix("`") else { return nil }
            return cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
        })
    }
}
