from a3d_cli.main import app

app(prog_name="a3d")
