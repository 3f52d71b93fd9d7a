# ref_static: the fix calls the library's static function, reads its static read-only data and
# updates its static counter, all reached with --ref (not exported).
run() { library_case libref.so --replace tick=tick_fixed --ref hits --ref greeting --ref scaled; }
