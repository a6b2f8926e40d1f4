import os

# the package's tests draw no figures on screen
os.environ.setdefault("MPLBACKEND", "Agg")
