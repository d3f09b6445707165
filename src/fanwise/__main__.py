from fanwise.cli import main

main()
