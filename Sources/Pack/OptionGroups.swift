/// Options given in groups on a command line, such as `hotpatch`'s target groups and `kernel`'s
/// module groups. ArgumentParser checks the options themselves but keeps no order between
/// different options, so the groups are read from the arguments in order: each `starter` option
/// opens a group and the group options after it belong to it. With a single `starter`, every
/// group option belongs to it wherever it stands.
struct OptionGroups {
    /// The options that belong to a group, `starter` among them.
    let options: Set<String>
    /// The option that opens a group, e.g. `--target`.
    let starter: String
    /// The starter's value name and what a group is, for messages ("ELF", "target").
    let valueName: String, noun: String

    /// The groups of `arguments` (a subcommand's own arguments, options with their values as
    /// separate words or as `--option=value`), each a list of (option, value) in command-line
    /// order with its starter first; [] when no starter is given. Throws when an option comes
    /// before the first of several starters, or an option has no value.
    func split(_ arguments: [String]) throws(PackError) -> [[(option: String, value: String)]] {
        var pairs: [(option: String, value: String)] = []
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            index += 1
            if word == "--" { break }
            if let equals = word.firstIndex(of: "="), options.contains(String(word[..<equals])) {
                pairs.append((String(word[..<equals]), String(word[word.index(after: equals)...])))
            } else if options.contains(word) {
                guard index < arguments.count else { throw PackError("\(word) needs a value") }
                pairs.append((word, arguments[index]))
                index += 1
            }
        }
        let starterCount = pairs.filter { $0.option == starter }.count
        guard starterCount > 0 else { return [] }
        if starterCount > 1, let stray = pairs.first, stray.option != starter {
            throw PackError("\(stray.option) \(stray.value) comes before the first \(starter): with several \(noun)s, each group starts with \(starter) \(valueName) and the options after it belong to that \(noun)")
        }
        // With one group, its options may stand anywhere: gather them behind the starter.
        if starterCount == 1 {
            pairs = pairs.filter { $0.option == starter } + pairs.filter { $0.option != starter }
        }
        var groups: [[(option: String, value: String)]] = []
        for pair in pairs {
            if pair.option == starter { groups.append([]) }
            groups[groups.count - 1].append(pair)
        }
        return groups
    }
}
