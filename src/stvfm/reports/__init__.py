"""Tables, plots and reproduction reports built from run folders."""
