from nasctl.cli import main

main()
