from notiflow.cli import main

main()
