from ingester.cli.app import main

main()
