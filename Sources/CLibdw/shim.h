// elfutils' libdw (Debian's libdw-dev), which hotpatch-pack reads DWARF with: which functions the
// compiler inlined where (DW_TAG_inlined_subroutine). Only the Pack target links it: hosts never
// install it. Opening goes through libdwfl, which applies a relocatable object's relocations to its
// DWARF sections (a .o's string offsets are relocations until then); the DWARF constants are
// wrapped as functions so the Swift side needs no C enum.
#ifndef CLIBDW_SHIM_H
#define CLIBDW_SHIM_H

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stddef.h>

/// Opens `path` offline with libdwfl (dwfl_begin, dwfl_report_offline) and returns its DWARF
/// (dwfl_module_getdwarf), relocated when it is a relocatable object. `*session` must be
/// closed with cdw_close, also when the result is NULL (no DWARF, or not an ELF file).
static inline Dwarf *cdw_open(const char *path, Dwfl **session) {
    static const Dwfl_Callbacks callbacks = {
        .find_elf = NULL,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .section_address = dwfl_offline_section_address,
        .debuginfo_path = NULL,
    };
    *session = dwfl_begin(&callbacks);
    if (*session == NULL) return NULL;
    Dwfl_Module *module = dwfl_report_offline(*session, path, path, -1);
    if (module == NULL || dwfl_report_end(*session, NULL, NULL) != 0) return NULL;
    Dwarf_Addr bias = 0;
    return dwfl_module_getdwarf(module, &bias);
}

/// Closes what cdw_open opened (dwfl_end); the Dwarf it returned goes with it.
static inline void cdw_close(Dwfl *session) {
    if (session != NULL) dwfl_end(session);
}

/// libdw's last error in words (dwfl_errmsg covers libdw's too).
static inline const char *cdw_last_error(void) {
    return dwfl_errmsg(-1);
}

/// The first DIE of the compile unit after `*offset` in `*cu` (dwarf_next_unit, so DWARF 5's
/// unit types count); false after the last one. `*offset` moves to the next unit.
static inline bool cdw_next_unit(Dwarf *dwarf, Dwarf_Off *offset, Dwarf_Die *cu) {
    Dwarf_Off next = 0;
    size_t header_size = 0;
    if (dwarf_next_unit(dwarf, *offset, &next, &header_size, NULL, NULL, NULL, NULL, NULL, NULL) != 0) return false;
    bool found = dwarf_offdie(dwarf, *offset + header_size, cu) != NULL;
    *offset = next;
    return found || cdw_next_unit(dwarf, offset, cu);
}

/// Whether `die` is a function (DW_TAG_subprogram) with code of its own (low_pc or ranges): an
/// abstract instance or a declaration has none.
static inline bool cdw_is_function_with_code(Dwarf_Die *die) {
    return dwarf_tag(die) == DW_TAG_subprogram
        && (dwarf_hasattr(die, DW_AT_low_pc) || dwarf_hasattr(die, DW_AT_ranges));
}

/// Whether `die` is an inlined copy of a function (DW_TAG_inlined_subroutine).
static inline bool cdw_is_inlined_subroutine(Dwarf_Die *die) {
    return dwarf_tag(die) == DW_TAG_inlined_subroutine;
}

/// The name the symbol table gives the function `die` describes: its linkage name when it has
/// one (C++), else its name, each followed through DW_AT_abstract_origin and DW_AT_specification
/// (dwarf_attr_integrate); NULL when it has neither.
static inline const char *cdw_function_name(Dwarf_Die *die) {
    Dwarf_Attribute attribute;
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attribute) != NULL
        || dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attribute) != NULL
        || dwarf_attr_integrate(die, DW_AT_name, &attribute) != NULL) {
        return dwarf_formstring(&attribute);
    }
    return NULL;
}

#endif
