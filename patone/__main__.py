from patone.cli import main

main()
