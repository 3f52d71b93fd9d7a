# ifunc: the fix calls strlen, memcpy, memset, strchr and strcmp (IFUNCs in glibc) and snprintf;
# no flag is needed. Needs issue 10 section 1; until then the agent refuses the patch object.
run() { library_case libifunc.so --replace greet=greet_fixed; }
