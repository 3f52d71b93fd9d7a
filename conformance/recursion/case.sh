# recursion: a recursive function replaced by another recursive one while threads are deep in the
# old recursion; once the patch is in, every call computes the new sequence, and after the revert
# the old one again.
run() { library_case librecursion.so --replace sequence=sequence_fixed; }
