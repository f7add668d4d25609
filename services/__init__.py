"""The rules of the service, free of Tornado: handlers parse, call one function here, and write."""
