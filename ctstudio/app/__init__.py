"""The Qt application: the only package that imports Qt, pyqtgraph or VTK."""
