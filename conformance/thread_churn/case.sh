# thread_churn: threads created and ending all the time while the process is patched and reverted.
run() { library_case libchurn.so --replace answer=answer_fixed; }
