# redzone: threads stopped inside a leaf function that keeps live data in the red zone; patching
# and reverting must not touch those 128 bytes.
run() {
    library_case libredzone.so --replace answer=answer_fixed
    # Every thread stopped in the red-zone loop checks it again after the revert.
    stays p UNPATCHED 1
}
