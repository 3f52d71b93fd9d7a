# cxx_exception: a C++ exception thrown from inside the replacement unwinds through the patch's
# frame to the caller's handler.
run() {
    case_init
    compile g++ -O2 -g -shared -fPIC -o libexc.so "$SRC/lib.cc"
    compile g++ -O2 -g -pthread -o prog "$SRC/prog.cc" -Wl,-rpath,'$ORIGIN' -L. -lexc
    compile g++ -O2 -g -shared -fPIC -o patch.so "$SRC/patch.cc"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch cxx_exception-1 1 libexc.so patch.so --replace checked=checked_fixed
    apply_then_revert p cxx_exception-1
}
