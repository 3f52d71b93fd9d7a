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

/// What a DIE is, for the struct layout reader: the hotpatch-pack classes of DWARF tags.
enum cdw_kind {
    CDW_OTHER = 0,
    CDW_AGGREGATE,      // struct, class or union
    CDW_TYPEDEF,
    CDW_INDIRECTION,    // pointer, reference, rvalue reference, pointer to member
    CDW_QUALIFIER,      // const, volatile, restrict, atomic
    CDW_ARRAY,
    CDW_MEMBER,
    CDW_VARIABLE,
    CDW_PARAMETER,
    CDW_FUNCTION,
    CDW_SCOPE,          // lexical block, inlined subroutine
    CDW_NAMESPACE,
};

/// The hotpatch-pack class of `die`'s tag.
static inline enum cdw_kind cdw_kind_of(Dwarf_Die *die) {
    switch (dwarf_tag(die)) {
    case DW_TAG_structure_type: case DW_TAG_class_type: case DW_TAG_union_type: return CDW_AGGREGATE;
    case DW_TAG_typedef: return CDW_TYPEDEF;
    case DW_TAG_pointer_type: case DW_TAG_reference_type: case DW_TAG_rvalue_reference_type:
    case DW_TAG_ptr_to_member_type: return CDW_INDIRECTION;
    case DW_TAG_const_type: case DW_TAG_volatile_type: case DW_TAG_restrict_type: case DW_TAG_atomic_type:
        return CDW_QUALIFIER;
    case DW_TAG_array_type: return CDW_ARRAY;
    case DW_TAG_member: return CDW_MEMBER;
    case DW_TAG_variable: return CDW_VARIABLE;
    case DW_TAG_formal_parameter: return CDW_PARAMETER;
    case DW_TAG_subprogram: return CDW_FUNCTION;
    case DW_TAG_lexical_block: case DW_TAG_inlined_subroutine: return CDW_SCOPE;
    case DW_TAG_namespace: return CDW_NAMESPACE;
    default: return CDW_OTHER;
    }
}

/// Whether `die` is an aggregate's union (its members all start at 0).
static inline bool cdw_is_union(Dwarf_Die *die) {
    return dwarf_tag(die) == DW_TAG_union_type;
}

/// `die`'s own name (DW_AT_name, not followed through origins), or NULL.
static inline const char *cdw_own_name(Dwarf_Die *die) {
    return dwarf_diename(die);
}

/// The DIE `die`'s DW_AT_type names (followed through DW_AT_abstract_origin and
/// DW_AT_specification), in `*type`; false when it has none (void).
static inline bool cdw_type_of(Dwarf_Die *die, Dwarf_Die *type) {
    Dwarf_Attribute attribute;
    if (dwarf_attr_integrate(die, DW_AT_type, &attribute) == NULL) return false;
    return dwarf_formref_die(&attribute, type) != NULL;
}

/// `die`'s size in bytes (DW_AT_byte_size), or -1.
static inline long long cdw_byte_size(Dwarf_Die *die) {
    int size = dwarf_bytesize(die);
    return size < 0 ? -1 : size;
}

/// A member's offset in bits from the start of its aggregate (DW_AT_data_member_location as a
/// constant, plus DW_AT_data_bit_offset), or -1 when it has neither (a union member: 0).
static inline long long cdw_member_bit_offset(Dwarf_Die *die) {
    Dwarf_Attribute attribute;
    Dwarf_Word value = 0;
    long long bits = -1;
    if (dwarf_attr(die, DW_AT_data_member_location, &attribute) != NULL && dwarf_formudata(&attribute, &value) == 0) {
        bits = (long long)value * 8;
    }
    if (dwarf_attr(die, DW_AT_data_bit_offset, &attribute) != NULL && dwarf_formudata(&attribute, &value) == 0) {
        bits = (bits < 0 ? 0 : bits) + (long long)value;
    }
    return bits;
}

/// A bit-field member's width (DW_AT_bit_size), or -1 for an ordinary member.
static inline long long cdw_bit_size(Dwarf_Die *die) {
    int size = dwarf_bitsize(die);
    return size < 0 ? -1 : size;
}

/// An array type's element count when its (first) subrange says it, else -1.
static inline long long cdw_array_count(Dwarf_Die *die) {
    Dwarf_Die child;
    if (dwarf_child(die, &child) != 0) return -1;
    Dwarf_Attribute attribute;
    Dwarf_Word value = 0;
    if (dwarf_attr(&child, DW_AT_count, &attribute) != NULL && dwarf_formudata(&attribute, &value) == 0) return (long long)value;
    if (dwarf_attr(&child, DW_AT_upper_bound, &attribute) != NULL && dwarf_formudata(&attribute, &value) == 0) return (long long)value + 1;
    return -1;
}

/// Whether `die` only declares (DW_AT_declaration): an incomplete struct, an extern variable.
static inline bool cdw_is_declaration(Dwarf_Die *die) {
    bool flag = false;
    Dwarf_Attribute attribute;
    return dwarf_attr(die, DW_AT_declaration, &attribute) != NULL && dwarf_formflag(&attribute, &flag) == 0 && flag;
}

/// Whether variable `die` lives at a fixed address (a location expression starting with DW_OP_addr):
/// a function's static local, not an ordinary local in a register or the frame.
static inline bool cdw_has_static_location(Dwarf_Die *die) {
    Dwarf_Attribute attribute;
    Dwarf_Op *expression = NULL;
    size_t length = 0;
    if (dwarf_attr(die, DW_AT_location, &attribute) == NULL) return false;
    if (dwarf_getlocation(&attribute, &expression, &length) != 0 || length == 0) return false;
    return expression[0].atom == DW_OP_addr;
}

/// `die`'s offset in its DWARF section: the identity of a type within one file.
static inline Dwarf_Off cdw_offset(Dwarf_Die *die) {
    return dwarf_dieoffset(die);
}

#endif
