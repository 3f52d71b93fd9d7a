# basic: a function of a shared library replaced in a running program, and reverted.
run() { library_case libbasic.so --replace answer=answer_fixed; }
