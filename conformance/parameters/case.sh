# parameters: ten integer and ten floating-point parameters reach the replacement intact.
run() { library_case libparameters.so --replace format_parameters=format_parameters_fixed; }
