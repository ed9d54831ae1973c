"""The demo register: real public data plus a clearly labelled synthetic Karabakh scenario."""
