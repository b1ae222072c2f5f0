from m3o.cli import main

main()
